"""Load test: the product page and the FBT endpoint at the highest rate the machine holds.

Runs the sample shop as in production (gunicorn with ``--workers`` processes, ``DJANGO_DEBUG=0``,
PostgreSQL, Redis as cache and broker, a Celery worker with beat flushing the tracking events)
on a database of its own filled by ``shop_demo``, with the API throttles raised through the
``API_THROTTLE_*`` variables. Two wrk processes run at the same time for ``--minutes``, closed
loop (no ``--rate``: each connection sends its next request when the last one is answered), one
on the product page and one on the FBT endpoint, each cycling over 200 products. The gunicorn
workers' resident memory (psutil) is sampled every 10 s.

Reports requests, errors (non-2xx answers and socket errors), requests per second and p99 latency
per endpoint, and the workers' RSS at the start, at the end and at its highest.

Usage: .venv/bin/python benchmarks/load_test.py [--minutes 5] [--json]
Needs wrk (Debian: apt-get install wrk), PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import prepare_shop, report, shop_arguments, start_gunicorn, wait_up

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PATHS = {
    "product_page": "/products/%d/",
    "fbt_api": "/api/crosssell/products/%d/frequently-bought-together/",
}
# Counts non-2xx answers itself (wrk's own status error count only sees codes above 399).
LUA = """
local ids = {%(ids)s}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) i = 0; bad = 0 end
request = function()
  i = i %% #ids + 1
  return wrk.format("GET", string.format("%(path)s", ids[i]))
end
response = function(status, headers, body)
  if status < 200 or status > 299 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local non2xx = 0
  for _, t in ipairs(threads) do non2xx = non2xx + t:get("bad") end
  io.write(string.format("RESULT %%d %%f %%f %%f %%d %%d\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
"""


class RssSampler(threading.Thread):
    """Samples the RSS of a gunicorn master's worker processes every ``interval`` seconds."""

    def __init__(self, master_pid: int, interval: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.master = psutil.Process(master_pid)
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.pids: set[int] = set()
        self.started = time.monotonic()
        self.stopped = threading.Event()

    def sample(self) -> None:
        workers = self.master.children()
        rss: dict[int, float] = {}
        for proc in workers:
            try:
                rss[proc.pid] = proc.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                continue
        self.pids |= set(rss)
        self.samples.append(
            {
                "t": round(time.monotonic() - self.started, 1),
                "total_mb": round(sum(rss.values()), 1),
                "workers_mb": [round(v, 1) for _, v in sorted(rss.items())],
            }
        )

    def run(self) -> None:
        self.sample()
        while not self.stopped.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.sample()


def start_wrk(
    base: str, path: str, ids: list[int], seconds: int, connections: int
) -> tuple[subprocess.Popen[str], str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(LUA % {"ids": ",".join(map(str, ids)), "path": path})
    proc = subprocess.Popen(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", fh.name, base],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc, fh.name


def finish_wrk(proc: subprocess.Popen[str], script: str) -> dict[str, float]:
    out, err = proc.communicate()
    os.unlink(script)
    line = next((x for x in out.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"wrk failed:\n{out}\n{err}")
    requests, seconds, p50, p99, non2xx, socket_errors = line.split()[1:]
    return {
        "requests": int(requests),
        "rps": round(int(requests) / float(seconds), 1),
        "p50_ms": round(float(p50), 1),
        "p99_ms": round(float(p99), 1),
        "non_2xx": int(non2xx),
        "socket_errors": int(socket_errors),
    }


def load(base: str, ids: list[int], seconds: int, connections: int) -> dict[str, dict[str, float]]:
    """Both endpoints at once for ``seconds``."""
    started = {
        name: start_wrk(base, path, ids, seconds, connections) for name, path in PATHS.items()
    }
    return {name: finish_wrk(*started[name]) for name in PATHS}


def main() -> None:
    ap = shop_arguments(__doc__, "crosssell_load", 14)  # --connections: per endpoint
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--warmup", type=int, default=15, help="seconds, not measured")
    a = ap.parse_args()
    log = sys.stderr
    env, ids = prepare_shop(a.database_url, a.redis_url, a.products, a.orders, log)
    tmp = tempfile.mkdtemp(prefix="load-test-")
    server, base = start_gunicorn(env, a.workers)
    # The production shape: a worker with beat, which flushes the tracking events to the database.
    worker = subprocess.Popen(
        [PY, "-m", "celery", "-A", "shop", "worker", "-B", "-c", "1", "-l", "warning",
         "-s", f"{tmp}/beat-schedule", "--without-gossip", "--without-mingle"],
        env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = int(a.minutes * 60)
    try:
        wait_up(f"{base}/products/{ids[0]}/")
        print(f"warming up for {a.warmup}s", file=log)
        load(base, ids, a.warmup, a.connections)
        sampler = RssSampler(server.pid)
        sampler.start()
        print(f"loading both endpoints for {seconds}s", file=log)
        results = load(base, ids, seconds, a.connections)
        sampler.stop()
        restarts = len(sampler.pids) - a.workers
    finally:
        for proc in (worker, server):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in (worker, server):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
    totals = [s["total_mb"] for s in sampler.samples]
    summary: dict[str, Any] = {
        **results,
        "requests": sum(r["requests"] for r in results.values()),
        "errors": sum(r["non_2xx"] + r["socket_errors"] for r in results.values()),
        "rps": round(sum(r["rps"] for r in results.values()), 1),
        "rss_start_mb": totals[0],
        "rss_end_mb": totals[-1],
        "rss_max_mb": max(totals),
        "rss_samples_mb": totals,
        "worker_restarts": restarts,
        "workers": a.workers,
        "connections_per_endpoint": a.connections,
        "seconds": seconds,
    }
    report(summary, a.json)


if __name__ == "__main__":
    main()
