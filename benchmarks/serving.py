"""Serving cost of the recommendations, measured side by side in one run.

Runs the sample shop under gunicorn on PostgreSQL and Redis, loads it with wrk, and compares:
- the FBT API endpoint against a bare DRF endpoint returning the same product (no
  recommendations): ``api_ratio = fbt_rps / bare_rps``;
- a product page with the widgets against the same page without them (``?widgets=0``):
  ``page_ratio``;
- the cart API endpoint (``POST /api/crosssell/cart/recommendations/``, carts of 2 to 6 sold
  products, ``--carts`` distinct ones cycled through) against the same bare endpoint:
  ``cart_ratio = cart_rps / bare_rps``.
Each pair is run A B B A after a warm-up (every page or cart asked for once, then a few
seconds of wrk; and a VACUUM ANALYZE of the fresh data), and averaged, so that machine noise
and drift hit both sides alike.

Usage: .venv/bin/python benchmarks/serving.py [--json] [--duration 10] [--connections 8]
       [--carts 200]
Needs wrk (Debian: apt-get install wrk), PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

LUA = """
local ids = {%(ids)s}
local i = 0
request = function()
  i = i %% #ids + 1
  return wrk.format("GET", string.format("%(path)s", ids[i]))
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%f %%f %%d %%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"""


POST_LUA = """
local bodies = {%(bodies)s}
local i = 0
local headers = {["Content-Type"] = "application/json"}
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", "%(path)s", headers, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%f %%f %%d %%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def recreate_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def product_ids(url: str, n: int) -> list[int]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT p.id FROM crosssell_product p WHERE p.is_active AND p.price > 0 "
            "AND (p.stock IS NULL OR p.stock > 0) AND EXISTS "
            "(SELECT 1 FROM crosssell_purchase u WHERE u.product_id = p.id) ORDER BY p.id LIMIT %s",
            (n,),
        ).fetchall()
    return [int(r[0]) for r in rows]


def carts_of(ids: list[int], n: int, seed: int = 16) -> list[str]:
    """``n`` JSON bodies of the cart endpoint: 2 to 6 distinct sold products each."""
    import random

    rnd = random.Random(seed)
    return [
        json.dumps({"product_ids": rnd.sample(ids, rnd.randint(2, 6)), "limit": 4})
        for _ in range(n)
    ]


def wrk(
    base: str,
    path: str,
    ids: list[int],
    seconds: float,
    connections: int,
    bodies: list[str] | None = None,
) -> dict[str, float]:
    """One wrk run: GET ``path % id`` over ``ids``, or POST ``bodies`` (JSON) to ``path``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        if bodies is None:
            fh.write(LUA % {"ids": ",".join(map(str, ids)), "path": path})
        else:
            quoted = ",".join("[[" + b + "]]" for b in bodies)
            fh.write(POST_LUA % {"bodies": quoted, "path": path})
        script = fh.name
    duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds
    try:
        run_ = subprocess.run(
            ["wrk", "-t", "1", "-c", str(connections), "-d", duration, "-s", script, base],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        os.unlink(script)
    if run_.returncode:
        raise SystemExit(f"wrk failed on {path}: {run_.stdout}{run_.stderr}")
    out = run_.stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    rps, p99, status_errors, socket_errors = line.split()[1:]
    return {
        "rps": float(rps),
        "p99_ms": float(p99),
        "errors": int(status_errors) + int(socket_errors),
    }


def prime(base: str, path: str, ids: list[int], bodies: list[str] | None = None) -> None:
    """Ask for every page or cart of a run once, so the timed runs measure warm caches (a
    few seconds of wrk at the loads of a busy machine reach only some of them)."""
    for i, target in enumerate(bodies if bodies is not None else ids):
        if bodies is None:
            request = urllib.request.Request(base + path % target)
        else:
            request = urllib.request.Request(
                base + path,
                data=str(target).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                r.read()
        except urllib.error.HTTPError:
            if i == 0:
                raise


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not come up")


def prepare_shop(
    database_url: str, redis_url: str, products: int, orders: int, log: Any
) -> tuple[dict[str, str], list[int]]:
    """A fresh database with the demo shop and a live build; returns the production-like
    environment of the servers and up to 200 product ids that sold."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "API_THROTTLE_ANON": "100000000/minute",
        "API_THROTTLE_USER": "100000000/minute",
        "API_THROTTLE_CROSSSELL": "100000000/minute",
    }
    print("preparing the database", file=log)
    recreate_database(database_url)
    run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env)
    run([PY, "manage.py", "collectstatic", "--noinput", "-v", "0"], env)
    demo = [PY, "manage.py", "shop_demo", "--products", str(products), "--orders", str(orders)]
    run(demo, {**env, "DJANGO_DEBUG": "1", "REDIS_URL": ""})
    subprocess.run(["redis-cli", "-u", redis_url, "FLUSHDB"], check=True, capture_output=True)
    vacuum(database_url)
    return env, product_ids(database_url, 200)


def vacuum(url: str) -> None:
    """VACUUM ANALYZE the fresh data now, so that autovacuum does not do it during a run."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


#: Each pair is measured A B B A: a drift of the machine during the run hits both sides alike.
ORDER = (0, 1, 1, 0)


def start_gunicorn(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """The shop under gunicorn on a free port; returns the process and its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [PY, "-m", "gunicorn", "shop.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", str(workers), "--log-level", "warning"],
        env=env, cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


def shop_arguments(doc: str | None, database: str, redis_db: int) -> argparse.ArgumentParser:
    """The options every benchmark of the running shop takes (and a check for wrk)."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--database-url", default=f"postgres://postgres@127.0.0.1:5432/{database}")
    ap.add_argument("--redis-url", default=f"redis://127.0.0.1:6379/{redis_db}")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    ap.add_argument("--products", type=int, default=400)
    ap.add_argument("--orders", type=int, default=8000)
    ap.add_argument("--json", action="store_true")
    return ap


def report(summary: dict[str, Any], as_json: bool) -> None:
    """One JSON object, or one line per figure."""
    if as_json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process started in its own session, with its children."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    proc.wait(timeout=60)


def main() -> None:
    ap = shop_arguments(__doc__, "crosssell_bench", 13)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    ap.add_argument("--carts", type=int, default=200, help="distinct carts of the cart row")
    a = ap.parse_args()
    log = sys.stderr
    env, ids = prepare_shop(a.database_url, a.redis_url, a.products, a.orders, log)
    carts = carts_of(ids, a.carts)
    server, base = start_gunicorn(env, a.workers)
    try:
        wait_up(f"{base}/api/shop/products/{ids[0]}/")
        bare = "/api/shop/products/%d/"
        pairs = {
            "api": ("/api/crosssell/products/%d/frequently-bought-together/", bare, None),
            "page": ("/products/%d/", "/products/%d/?widgets=0", None),
            "cart": ("/api/crosssell/cart/recommendations/", bare, carts),
        }
        results: dict[str, Any] = {}
        for name, (with_recs, without, bodies) in pairs.items():
            print(f"warming up {name}", file=log)
            prime(base, with_recs, ids, bodies)
            prime(base, without, ids)
            wrk(base, with_recs, ids, 3, a.connections, bodies)
            wrk(base, without, ids, 3, a.connections)
            runs: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
            sides = (("with", with_recs, bodies), ("without", without, None))
            for side, path, posted in (sides[i] for i in ORDER):
                runs[side].append(wrk(base, path, ids, a.duration, a.connections, posted))
                print(f"{name} {side}: {runs[side][-1]}", file=log)
            results[name] = {
                side: {
                    "rps": sum(r["rps"] for r in rs) / len(rs),
                    "p99_ms": max(r["p99_ms"] for r in rs),
                    "errors": sum(r["errors"] for r in rs),
                }
                for side, rs in runs.items()
            }
    finally:
        stop(server)
    api, page, cart = results["api"], results["page"], results["cart"]
    summary = {
        "fbt_rps": round(api["with"]["rps"], 1),
        "bare_rps": round(api["without"]["rps"], 1),
        "api_ratio": round(api["with"]["rps"] / api["without"]["rps"], 3),
        "fbt_p99_ms": round(api["with"]["p99_ms"], 1),
        "page_rps": round(page["with"]["rps"], 1),
        "plain_page_rps": round(page["without"]["rps"], 1),
        "page_ratio": round(page["with"]["rps"] / page["without"]["rps"], 3),
        "cart_rps": round(cart["with"]["rps"], 1),
        "cart_bare_rps": round(cart["without"]["rps"], 1),
        "cart_ratio": round(cart["with"]["rps"] / cart["without"]["rps"], 3),
        "cart_p99_ms": round(cart["with"]["p99_ms"], 1),
        "carts": a.carts,
        "errors": sum(side["errors"] for pair in results.values() for side in pair.values()),
        "workers": a.workers,
        "connections": a.connections,
        "duration_s": a.duration,
    }
    report(summary, a.json)


if __name__ == "__main__":
    main()
