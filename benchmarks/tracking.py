"""What tracking costs the page, and whether every event reaches the database.

1. Throughput, side by side in one run: two gunicorn servers of the sample shop on the same
   PostgreSQL and Redis, one with ``CROSSSELL_TRACKING=1`` and one with ``0``, both serving the
   product page with its two widgets; wrk loads them in ``--rounds`` rounds of A B B A after a
   warm-up, and ``ratio`` is the median over the rounds of rps(tracking on) / rps(tracking off).
   wrk keeps no cookie, so every request is a new visitor: the page records two impressions and
   sets the visitor's cookie each time. The tracked server sends its impressions to Redis in
   batches of ``--batch`` events (the default of ``CROSSSELL_TRACKING_BATCH``); ``--batch 1``
   measures one push at the end of every request.
2. Delivery: with no Celery worker running (the flush is late), a client browses the tracked
   server: product pages (each widget shown is one impression, counted from the HTML), clicks on
   recommended products (the links' ``cs``/``csp``) and add-to-carts from the widget's form.
   Then a real worker runs the flush task and is killed with SIGKILL once it has written part of
   the queue; a new worker runs the flush again. ``events_written`` (impression and event rows)
   must equal ``events_generated``. The web server is stopped (SIGTERM) before the flush: what
   its workers held goes to Redis as they exit. The storefront's event limits (per address and
   per visitor, applied as events are written) are off for this test: its 20 clients browse at
   machine speed from one address, which the limits exist to cut short.

Usage: .venv/bin/python benchmarks/tracking.py [--json] [--duration 6] [--rounds 3] [--batch 200]
       [--pages 1500]
Needs wrk (Debian: apt-get install wrk), PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ORDER, prepare_shop, report, shop_arguments, start_gunicorn, stop, wait_up, wrk

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PAGE = "/products/%d/"


def throughput(
    env: dict[str, str], ids: list[int], a: argparse.Namespace, log: Any
) -> dict[str, Any]:
    tracked = {**env, "CROSSSELL_TRACKING": "1", "CROSSSELL_TRACKING_BATCH": str(a.batch)}
    on, base_on = start_gunicorn(tracked, a.workers)
    off, base_off = start_gunicorn({**env, "CROSSSELL_TRACKING": "0"}, a.workers)
    try:
        for base in (base_on, base_off):
            wait_up(f"{base}/products/{ids[0]}/")
        for base in (base_on, base_off):
            wrk(base, PAGE, ids, 3, a.connections)  # warm-up: caches, connections
        runs: dict[str, list[float]] = {"on": [], "off": []}
        ratios: list[float] = []
        sides = (("on", base_on), ("off", base_off))
        for _ in range(a.rounds):
            got: dict[str, list[float]] = {"on": [], "off": []}
            for side, base in (sides[i] for i in ORDER):
                result = wrk(base, PAGE, ids, a.duration, a.connections)
                if result["errors"]:
                    raise SystemExit(f"{result['errors']} errors with tracking {side}")
                got[side].append(result["rps"])
                print(f"tracking {side}: {result}", file=log)
            ratios.append(statistics.mean(got["on"]) / statistics.mean(got["off"]))
            for side in got:
                runs[side] += got[side]
    finally:
        stop(on)
        stop(off)
    return {
        "rps_on": round(statistics.mean(runs["on"]), 1),
        "rps_off": round(statistics.mean(runs["off"]), 1),
        # The median of the rounds' ratios: one round that a burst of the machine's own work
        # hit does not decide the figure.
        "ratio": round(statistics.median(ratios), 3),
        "round_ratios": [round(r, 3) for r in ratios],
    }


class _PlainHttpPolicy(http.cookiejar.DefaultCookiePolicy):
    """Send the production settings' secure cookies back over the benchmark's plain HTTP."""

    def return_ok_secure(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return True


class Browser:
    """A visitor with a cookie jar (urllib), counting the events it causes."""

    def __init__(self, base: str) -> None:
        self.base = base
        jar = http.cookiejar.CookieJar(policy=_PlainHttpPolicy())
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        self.generated = {"impression": 0, "click": 0, "add_to_cart": 0}

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as r:
            return str(r.read().decode())

    def page(self, pk: int) -> str:
        html = self.get(PAGE % pk)
        self.generated["impression"] += html.count("data-crosssell=")
        return html

    def click(self, html: str) -> None:
        link = re.search(r'href="(/products/(\d+)/\?cs=[^"]+)"', html)
        if not link:
            return
        landed = self.get(link.group(1).replace("&amp;", "&"))
        self.generated["click"] += 1
        self.generated["impression"] += landed.count("data-crosssell=")

    def add_from_widget(self, html: str) -> None:
        form = re.search(
            r'<form class="cs-fbt-form".*?name="csrfmiddlewaretoken" value="([^"]+)".*?'
            r'name="cs" value="([^"]+)".*?data-product-id="(\d+)"',
            html,
            re.S,
        )
        if not form:
            return
        csrf, token, product = form.groups()
        body = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": csrf, "cs": token, "product_id": product, "quantity": 1}
        ).encode()
        request = urllib.request.Request(
            self.base + "/cart/add/", data=body, headers={"Referer": self.base + "/"}
        )
        with self.opener.open(request, timeout=30) as r:
            html_after = r.read().decode()  # the redirect back: a page with widgets
        self.generated["add_to_cart"] += 1
        self.generated["impression"] += html_after.count("data-crosssell=")


def rows(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM crosssell_impression) + "
            "(SELECT count(*) FROM crosssell_event)"
        ).fetchone()
    return int(row[0]) if row else 0


def start_worker(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, "-m", "celery", "-A", "shop", "worker", "-c", "1", "-n", f"{name}@%h",
         "-l", "warning", "--without-gossip", "--without-mingle"],
        env=env, cwd=ROOT, start_new_session=True, stdout=sys.stderr,
    )  # fmt: skip


def send_flush(env: dict[str, str]) -> None:
    code = "from crosssell.tasks import flush_events; flush_events.delay()"
    subprocess.run(
        [PY, "-c", f"import django; django.setup(); {code}"],
        env={**env, "DJANGO_SETTINGS_MODULE": "shop.settings"}, cwd=ROOT, check=True,
    )  # fmt: skip


def delivery(
    env: dict[str, str], ids: list[int], a: argparse.Namespace, log: Any
) -> dict[str, Any]:
    import redis

    queue = redis.Redis.from_url(env["REDIS_URL"])
    env = {**env, "STOREFRONT_EVENTS_ADDRESS": "", "STOREFRONT_EVENTS_VISITOR": ""}
    before = rows(env["DATABASE_URL"])
    tracked = {**env, "CROSSSELL_TRACKING": "1", "CROSSSELL_TRACKING_BATCH": str(a.batch)}
    server, base = start_gunicorn(tracked, a.workers)
    try:
        wait_up(f"{base}/products/{ids[0]}/?widgets=0")  # a page without widgets: no event
        browsers = [Browser(base) for _ in range(20)]
        for n in range(a.pages):
            b = browsers[n % len(browsers)]
            html = b.page(ids[n % len(ids)])
            if n % 5 == 0:
                b.click(html)
            if n % 7 == 0:
                b.add_from_widget(html)
    finally:
        stop(server)
    generated: dict[str, int] = {}
    for b in browsers:
        for k, v in b.generated.items():
            generated[k] = generated.get(k, 0) + v
    queued = int(queue.llen("crosssell:events"))
    print(f"generated {generated}, queued {queued}", file=log)
    # The flush is late (no worker yet); the first worker is killed in the middle of it.
    first = start_worker(env, "first")
    send_flush(env)
    deadline = time.monotonic() + 120
    while rows(env["DATABASE_URL"]) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    stop(first, signal.SIGKILL)
    killed_at = rows(env["DATABASE_URL"]) - before
    left = int(queue.llen("crosssell:events")) + int(queue.llen("crosssell:events:processing"))
    print(f"worker killed with {killed_at} rows written, {left} events left queued", file=log)
    second = start_worker(env, "second")
    try:
        send_flush(env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            left = int(queue.llen("crosssell:events")) + int(
                queue.llen("crosssell:events:processing")
            )
            if not left:
                break
            time.sleep(0.5)
        time.sleep(1)
    finally:
        stop(second)
    return {
        "events_generated": sum(generated.values()),
        "events_written": rows(env["DATABASE_URL"]) - before,
        "generated": generated,
        "queued_before_flush": queued,
        "written_when_killed": killed_at,
    }


def main() -> None:
    ap = shop_arguments(__doc__, "crosssell_bench", 13)
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per measured wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="A B B A rounds of the throughput test")
    ap.add_argument("--pages", type=int, default=1500, help="pages browsed for the delivery test")
    ap.add_argument(
        "--batch", type=int, default=200, help="CROSSSELL_TRACKING_BATCH of the tracked server"
    )
    a = ap.parse_args()
    log = sys.stderr
    env, ids = prepare_shop(a.database_url, a.redis_url, a.products, a.orders, log)
    summary = throughput(env, ids, a, log)
    # Only the delivery test's events are counted: the throughput run's go.
    subprocess.run(["redis-cli", "-u", a.redis_url, "DEL", "crosssell:events"], check=True,
                   capture_output=True)  # fmt: skip
    summary.update(delivery(env, ids, a, log))
    summary.update(
        workers=a.workers, connections=a.connections, duration_s=a.duration, batch=a.batch
    )
    report(summary, a.json)


if __name__ == "__main__":
    main()
