"""What an unreachable Celery broker adds to a checkout.

One process runs the sample shop's checkout through Django's test client (cart add, then the
timed checkout POST, whose commit queues the incremental update) on a database of its own
(``--bench-db`` on the server of ``--database-url``) filled with the demo shop, with Redis as
the cache and Celery not eager. The broker alternates in rounds of A B B A between up (the Redis
of ``--redis-url``) and down (a local port nothing listens on: the connection is refused at
once; with ``--blackhole``, a local port that listens with its backlog full and never accepts, so
a connection hangs until the broker's connect timeout, as with a host that drops packets),
``--orders`` checkouts per turn, after a warm-up of both. Each checkout is the first of its burst
(the debounce key is dropped before it, untimed), so each one queues its task, or tries to: the
worst case for the broker down. The products bought have no stock count, so no order sells out.

A failed attempt that waited for a timeout starts crosssell's back-off
(``CROSSSELL_BROKER_BACKOFF``; ``--backoff`` overrides it, 0: none): the checkouts of the next
seconds do not try the broker. Each up turn starts with the back-off over (as once the broker is
back and the back-off has run out), so each round's two down turns are one outage whose first
checkout tries the broker.

Printed (``--json``: one object): the median, mean and 95th percentile checkout latency of each
side, ``added_ms`` (the median over the rounds of median(down) - median(up)) with each round's
figure, ``added_mean_ms`` (the same with means: the first checkout's wait spread over the outage),
the median time spent queueing the task (or failing to) on each side, the part the broker decides,
the TCP connection attempts per checkout with the broker down, and the warnings logged per
outage (each round's two down turns, between up turns, are one outage).

``--sender plain`` measures the call crosssell made before: ``apply_async`` with the project's
retry policy and kombu's connection retries. ``--celery-defaults`` drops the sample shop's broker
hardening (transport socket timeouts, publish retry policy, connect timeout) for Celery's
defaults, as a project that never set them has.

Usage: .venv/bin/python benchmarks/broker_down.py [--json] [--rounds 4] [--orders 30]
       [--database-url URL] [--redis-url URL] [--sender crosssell|plain] [--celery-defaults]
       [--blackhole] [--backoff SECONDS]
Needs PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
ORDER = (0, 1, 1, 0)  # A B B A: a drift of the machine weighs on both sides alike
SIDES = ("up", "down")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def recreate_database(server_url: str, name: str, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def blackhole() -> tuple[int, list[socket.socket]]:
    """A local port whose connections hang until the client's timeout: it listens with a backlog
    of 0 and never accepts, and one connection fills the queue, so the kernel drops the next
    SYNs. Returns the port and the sockets to keep open."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port: int = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    probe = socket.socket()
    probe.settimeout(0.2)
    try:
        probe.connect(("127.0.0.1", port))
    except TimeoutError:
        pass
    else:
        raise SystemExit("--blackhole: the port accepted a connection; it must hang")
    finally:
        probe.close()
    return port, [server, filler]


class Attempts:
    """Counts TCP connection attempts to one port (they still happen)."""

    def __init__(self, port: int) -> None:
        self.count = 0
        real = socket.socket.connect

        def connect(sock: socket.socket, address: Any) -> Any:
            if isinstance(address, tuple) and address[1:2] == (port,):
                self.count += 1
            return real(sock, address)

        socket.socket.connect = connect  # type: ignore[method-assign]


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def point_broker(app: Any, url: str) -> None:
    """Send this process's tasks to ``url`` from now on (a fresh connection pool)."""
    from kombu import pools

    app.conf.broker_url = url
    pools.reset()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def run(a: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.db import reset_queries
    from django.test import Client
    from django.test.utils import override_settings
    from django.urls import reverse

    from crosssell import tasks
    from crosssell.services import incremental
    from crosssell.services.build import rebuild
    from shop import demo
    from shop.celery import app

    override_settings(SHOP_RATE_LIMITS={}).enable()  # thousands of checkouts from one address
    if a.backoff is not None:
        override_settings(CROSSSELL_BROKER_BACKOFF=a.backoff).enable()
    demo.generate(120, 1500, seed=3)
    rebuild(trigger="benchmark")
    from crosssell.models import Product

    ids = list(
        Product.objects.filter(is_active=True, stock__isnull=True, price__gt=0).values_list(
            "pk", flat=True
        )
    )
    app.conf.task_always_eager = False
    if a.celery_defaults:
        app.conf.broker_transport_options = {}
        app.conf.task_publish_retry_policy = {
            "max_retries": 3,
            "interval_start": 0,
            "interval_max": 1,
            "interval_step": 0.2,
        }
        app.conf.broker_connection_timeout = 4.0
    if a.sender == "plain":

        def plain(countdown: float) -> None:
            try:
                tasks.process_pending.apply_async(countdown=countdown, ignore_result=True)
            except Exception as exc:
                raise incremental.BrokerUnavailable(str(exc)) from exc

        incremental.set_sender(plain)
    # The time spent queueing (or failing to), the part of the checkout the broker decides.
    queueing: list[float] = []
    send = incremental.set_sender(None)
    assert send is not None

    def timed(countdown: float) -> None:
        started = time.perf_counter()
        try:
            send(countdown)
        finally:
            queueing.append((time.perf_counter() - started) * 1000)

    incremental.set_sender(timed)
    port, keep_open = blackhole() if a.blackhole else (unused_port(), [])
    urls = {"up": settings.CELERY_BROKER_URL, "down": f"redis://127.0.0.1:{port}/0"}
    attempts = Attempts(port)
    warned = Warnings()
    logging.getLogger("crosssell.services.incremental").addHandler(warned)
    rnd = random.Random(11)
    serial = iter(range(10**9))

    sent: dict[str, list[float]] = {s: [] for s in SIDES}

    def checkouts(side: str, n: int) -> list[float]:
        point_broker(app, urls[side])
        if side == "up":
            incremental.outage.failed_at = None  # the back-off has run out: the broker is back
        took = []
        queueing.clear()
        for _ in range(n):
            cache.delete(incremental.DEBOUNCE_KEY)
            client = Client()
            client.post(reverse("shop:cart-add"), {"product_id": rnd.sample(ids, 2)})
            started = time.perf_counter()
            resp = client.post(
                reverse("shop:checkout"), {"name": "Bench", "email": f"b{next(serial)}@x.org"}
            )
            took.append((time.perf_counter() - started) * 1000)
            if resp.status_code != 302 or resp["Location"] != reverse("shop:thanks"):
                raise SystemExit(f"checkout failed with the broker {side}: {resp.status_code}")
            reset_queries()
        sent[side] += queueing
        return took

    logging.getLogger("crosssell").handlers.clear()  # counted, not printed
    for side in SIDES:
        checkouts(side, 10)  # warm-up: connections, caches, the first warning
    attempts.count, warned.count = 0, 0
    sent = {s: [] for s in SIDES}
    got: dict[str, list[float]] = {s: [] for s in SIDES}
    added: list[float] = []
    added_mean: list[float] = []
    for _ in range(a.rounds):
        turn: dict[str, list[float]] = {s: [] for s in SIDES}
        for i in ORDER:
            turn[SIDES[i]] += checkouts(SIDES[i], a.orders)
        added.append(statistics.median(turn["down"]) - statistics.median(turn["up"]))
        added_mean.append(statistics.mean(turn["down"]) - statistics.mean(turn["up"]))
        for side in SIDES:
            got[side] += turn[side]
    point_broker(app, urls["up"])
    app.control.purge()  # the tasks queued while up: no worker ran them
    down_checkouts = len(got["down"])
    for sock in keep_open:
        sock.close()
    return {
        "up_median_ms": round(statistics.median(got["up"]), 2),
        "down_median_ms": round(statistics.median(got["down"]), 2),
        "up_p95_ms": round(percentile(got["up"], 0.95), 2),
        "down_p95_ms": round(percentile(got["down"], 0.95), 2),
        "up_mean_ms": round(statistics.mean(got["up"]), 2),
        "down_mean_ms": round(statistics.mean(got["down"]), 2),
        "down_max_ms": round(max(got["down"]), 2),
        "added_ms": round(statistics.median(added), 2),
        "added_mean_ms": round(statistics.median(added_mean), 2),
        "queueing_up_median_ms": round(statistics.median(sent["up"]), 2),
        "queueing_down_median_ms": round(statistics.median(sent["down"]), 2),
        "queueing_down_max_ms": round(max(sent["down"]), 2),
        "round_added_ms": [round(v, 2) for v in added],
        "connects_per_down_checkout": round(attempts.count / down_checkouts, 2),
        "warnings_per_outage": round(warned.count / a.rounds, 2),
        "checkouts_per_side": down_checkouts,
        "rounds": a.rounds,
        "sender": a.sender,
        "celery_defaults": a.celery_defaults,
        "down": "blackhole" if a.blackhole else "refused",
        "connect_timeout_s": (app.conf.broker_transport_options or {}).get(
            "socket_connect_timeout"
        ),
        "backoff_s": incremental._backoff(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", action="store_true")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--orders", type=int, default=30, help="checkouts per side per turn")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    p.add_argument("--bench-db", default="crosssell_broker_bench")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--sender", choices=("crosssell", "plain"), default="crosssell")
    p.add_argument("--celery-defaults", action="store_true")
    p.add_argument(
        "--blackhole",
        action="store_true",
        help="the broker down is a port whose connections hang until the connect timeout",
    )
    p.add_argument("--backoff", type=float, default=None, help="CROSSSELL_BROKER_BACKOFF (seconds)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.inner:  # the measuring process, on the fresh database
        result = run(a)
        print(json.dumps(result))
        return
    if not a.database_url.startswith("postgres"):
        raise SystemExit("--database-url (or DATABASE_URL) must name a PostgreSQL server")
    bench_url = with_database(a.database_url, a.bench_db)
    recreate_database(a.database_url, a.bench_db)
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "REDIS_URL": a.redis_url,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "PYTHONPATH": str(ROOT),
    }
    try:
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "migrate", "--verbosity", "0"],
            env=env,
            check=True,
        )
        done = subprocess.run(
            [sys.executable, __file__, "--inner", *sys.argv[1:]],
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
    finally:
        recreate_database(a.database_url, a.bench_db, drop_only=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if a.json:
        print(json.dumps(result))
        return
    print(
        f"checkout, broker up:   median {result['up_median_ms']} ms, p95 {result['up_p95_ms']} ms\n"
        f"checkout, broker down: median {result['down_median_ms']} ms, "
        f"p95 {result['down_p95_ms']} ms\n"
        f"checkout means:        {result['up_mean_ms']} ms up, {result['down_mean_ms']} ms down "
        f"(max {result['down_max_ms']} ms)\n"
        f"added per checkout:    {result['added_ms']} ms (rounds {result['round_added_ms']}; "
        f"aim: under 50 ms); with means {result['added_mean_ms']} ms\n"
        f"broker down: {result['down']} (connect timeout {result['connect_timeout_s']} s, "
        f"back-off {result['backoff_s']} s)\n"
        f"queueing the task:     median {result['queueing_up_median_ms']} ms up, "
        f"{result['queueing_down_median_ms']} ms down (max {result['queueing_down_max_ms']} ms)\n"
        f"connection attempts per checkout with the broker down: "
        f"{result['connects_per_down_checkout']}; warnings per outage: "
        f"{result['warnings_per_outage']}"
    )


if __name__ == "__main__":
    main()
