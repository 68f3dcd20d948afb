"""The web process's outbox: the widgets' impressions reach Redis in batches, at once with a
click, and when the process exits, a graceful restart of a gunicorn worker included."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from crosssell.models import Product
from crosssell.services import tracking
from shop import demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue() -> Any:
    redis = tracking._redis()
    if redis is None:
        pytest.skip("needs the Redis cache (REDIS_URL)")
    redis.delete(tracking.QUEUE, tracking.PROCESSING)
    return redis


def pages(demo_shop: demo.Summary, n: int) -> list[int]:
    ids = Product.objects.filter(is_active=True, crosssell_purchases__isnull=False).values_list(
        "pk", flat=True
    )
    return list(dict.fromkeys(ids))[:n]


def test_impressions_wait_for_a_batch(
    client: Client, demo_shop: demo.Summary, queue: Any, settings: Any
) -> None:
    settings.CROSSSELL_TRACKING_BATCH = 6
    settings.CROSSSELL_TRACKING_BATCH_SECONDS = 3600
    first, second, third = pages(demo_shop, 3)
    client.get(f"/products/{first}/")  # two widgets: two impressions, held
    client.get(f"/products/{second}/")
    assert queue.llen(tracking.QUEUE) == 0
    client.get(f"/products/{third}/")  # six held: one push
    assert queue.llen(tracking.QUEUE) == 6


def test_old_impressions_go_with_the_next_request(
    client: Client, demo_shop: demo.Summary, queue: Any, settings: Any
) -> None:
    settings.CROSSSELL_TRACKING_BATCH_SECONDS = 0.3
    first, second = pages(demo_shop, 2)
    client.get(f"/products/{first}/")
    assert queue.llen(tracking.QUEUE) == 0
    time.sleep(0.35)
    client.get(f"/products/{second}/")
    assert queue.llen(tracking.QUEUE) == 4


def test_a_click_sends_the_outbox_at_once(
    client: Client, demo_shop: demo.Summary, queue: Any
) -> None:
    first = pages(demo_shop, 1)[0]
    html = client.get(f"/products/{first}/").content.decode()
    assert queue.llen(tracking.QUEUE) == 0
    link = html.split('href="/products/', 2)[2].split('"')[0].replace("&amp;", "&")
    assert "cs=" in link
    client.get(f"/products/{link}")  # the click and the page's own impressions
    assert queue.llen(tracking.QUEUE) == 2 + 1 + 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gunicorn_env(demo_shop: demo.Summary, queue: Any) -> Iterator[dict[str, str]]:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (the server reads the committed demo shop)")
    db = connection.settings_dict
    yield {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}"
            f":{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "CROSSSELL_TRACKING_BATCH_SECONDS": "3600",  # only the batch size or an exit sends
    }


def serve(env: dict[str, str], *options: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "shop.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", "1", "--log-level", "warning", *options],
        env=env, cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # A long timeout: a retried readiness check would be a second request, and the
            # max-requests test counts them (a worker's first request imports the app).
            with urllib.request.urlopen(f"{base}/?widgets=0", timeout=30):
                return server, base
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not come up")


def widgets_seen(base: str, pk: int) -> int:
    with urllib.request.urlopen(f"{base}/products/{pk}/", timeout=10) as r:
        return str(r.read().decode()).count("data-crosssell=")


@pytest.mark.slow
def test_a_gunicorn_worker_sends_what_it_holds_when_it_stops(
    demo_shop: demo.Summary, gunicorn_env: dict[str, str], queue: Any
) -> None:
    server, base = serve(gunicorn_env)
    try:
        shown = sum(widgets_seen(base, pk) for pk in pages(demo_shop, 5))
        assert shown >= 5 and queue.llen(tracking.QUEUE) == 0  # held in the worker
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # a graceful stop, as a deploy does
        server.wait(timeout=30)
    assert queue.llen(tracking.QUEUE) == shown


@pytest.mark.slow
def test_a_gunicorn_worker_restarted_after_max_requests_loses_nothing(
    demo_shop: demo.Summary, gunicorn_env: dict[str, str], queue: Any
) -> None:
    # The worker is replaced after 4 requests (the readiness check is one): the first three
    # pages' impressions are sent as it goes, the server keeps running.
    server, base = serve(gunicorn_env, "--max-requests", "4")
    try:
        ids = pages(demo_shop, 3)
        shown = sum(widgets_seen(base, pk) for pk in ids)
        deadline = time.monotonic() + 30
        while queue.llen(tracking.QUEUE) < shown and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queue.llen(tracking.QUEUE) == shown
        assert widgets_seen(base, ids[0]) > 0  # the new worker serves
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
