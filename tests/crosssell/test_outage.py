"""Failure: Redis stopped and restarted for real under checkouts and page views, and a database
error in the middle of a rebuild.

The Redis tests start their own ``redis-server`` on a spare port, point the test process's cache
and Celery broker (and a real worker) at it, and stop it: orders must still be recorded, pages and
the API must still serve recommendations (from the database), and once Redis is back the updates
that waited in ``PendingUpdate`` must be applied.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy.typing as npt
import psycopg
import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.db import Error as DatabaseFailure
from django.db import OperationalError, connection
from django.test import Client, override_settings
from django.urls import reverse
from kombu import pools

from crosssell import tasks
from crosssell.engine.base import TopK
from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, PendingUpdate, Purchase, Recommendation
from crosssell.services.build import rebuild
from crosssell.testing import make_product
from shop.celery import app

if not apps.is_installed("shop"):  # the checkouts go through the sample shop
    pytest.skip("needs the sample shop (shop.settings)", allow_module_level=True)

from crosssell.testing import live_list, wait_for
from crosssell.testing import paired_shop as make_shop
from shop.models import Order, OrderLine
from tests.crosssell.strategies import COCOUNT
from tests.widgets import widgets

FBT = Recommendation.Kind.BOUGHT_TOGETHER
SPARE_PORTS = range(6391, 6400)


# --- a redis-server of our own -----------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisServer:
    """A throw-away ``redis-server`` (no persistence) that a test can stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are accepted by the kernel, never answered,
        as with a Redis that hangs or a network that drops packets."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
        with pytest.raises(OSError):  # the port really refuses connections now
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()


def _reset_celery_connections() -> None:
    """Drop the app's cached broker pool, producer pool and result backend, so the next use
    connects to ``app.conf``'s current URLs (what ``Celery._after_fork`` does, plus the
    backend)."""
    # kombu keeps connection pools in a global registry keyed by URL: closing one there would
    # hand a closed pool back to the next user of that URL (the other tests), so reset it.
    pools.reset()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)


@pytest.fixture
def spare_redis() -> Iterator[RedisServer]:
    """A running redis-server on a spare port, with this process's cache and Celery on it."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = next((p for p in SPARE_PORTS if _port_free(p)), None)
    if port is None:
        pytest.skip(f"no free port in {SPARE_PORTS}")
    server = RedisServer(port)
    server.start()
    options = dict(django_settings.CACHES["default"].get("OPTIONS") or {})
    if options:
        # The shop's timeout as it ships (0.5 s): the test script raises it for the healthy Redis
        # the other tests share (REDIS_SOCKET_TIMEOUT), which is not what is under test here.
        options["socket_timeout"] = min(float(options.get("socket_timeout", 0.5)), 0.5)
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "shop",
            # The shop's own short timeouts when it has them: they are what is under test.
            "OPTIONS": options or {"socket_connect_timeout": 0.25, "socket_timeout": 0.5},
        }
    }
    urls = app.conf.broker_url, app.conf.result_backend
    app.conf.broker_url = app.conf.result_backend = server.url
    _reset_celery_connections()
    try:
        with override_settings(CACHES=caches):
            yield server
    finally:
        app.conf.broker_url, app.conf.result_backend = urls
        _reset_celery_connections()
        server.stop()


# --- Redis down during checkouts and page views --------------------------------------------------


def checkout(client: Client, *products: Any, email: str) -> tuple[Order, float]:
    """Put ``products`` in the cart and check out as a guest; returns the order and seconds."""
    resp = client.post(reverse("shop:cart-add"), {"product_id": [p.pk for p in products]})
    assert resp.status_code == 302
    started = time.monotonic()
    resp = client.post(reverse("shop:checkout"), {"name": "Outage test", "email": email})
    took = time.monotonic() - started
    assert resp.status_code == 302 and resp["Location"] == reverse("shop:thanks"), resp
    return Order.objects.get(email=email), took


def fbt_widget(client: Client, product: Any) -> list[int]:
    resp = client.get(f"/products/{product.pk}/")
    assert resp.status_code == 200
    return widgets(resp.content.decode())["frequently-bought-together"].ids


def fbt_api(client: Client, product: Any) -> list[int]:
    resp = client.get(f"/api/crosssell/products/{product.pk}/frequently-bought-together/")
    assert resp.status_code == 200
    return [r["id"] for r in resp.json()["results"]]


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_redis_outage_loses_no_order_and_catches_up(
    spare_redis: RedisServer, celery_workers: Callable[..., Any]
) -> None:
    products = make_shop(n_products=24, n_orders=300)
    # Two new products nobody has bought yet: once three orders hold both, each must be the
    # other's first companion (three guest orders are three customers for the threshold).
    x, y = make_product("Outage X", category="C0"), make_product("Outage Y", category="C1")
    rebuild(strategy=COCOUNT)
    assert y.pk not in live_list(x)
    worker = celery_workers("w1", REDIS_URL=spare_redis.url, CROSSSELL_INCREMENTAL_DELAY="1")
    client = Client()
    warm = fbt_widget(client, x)
    assert warm and fbt_api(client, x)
    # The worker runs the catch-up task, nothing is pending yet; this process now also listens
    # for task results on Redis, as a web process that has sent any task before does.
    entry = django_settings.CELERY_BEAT_SCHEDULE["crosssell-pending-updates"]["task"]
    assert app.send_task(entry).get(timeout=30) == 0

    spare_redis.stop()
    orders = []
    for i in range(3):
        order, took = checkout(client, x, y, email=f"outage{i}@example.org")
        # The broker and the cache refuse at once: a checkout does not wait on them.
        assert took < 3.0, f"checkout took {took:.1f}s with Redis down"
        orders.append(order)
        # Page views and the API keep serving the live build from the database.
        assert fbt_widget(client, x) == warm
        assert fbt_api(client, products[0])[:1] == [products[1].pk]
    assert fbt_widget(client, products[2])[:1] == [products[3].pk]
    for order in orders:
        assert set(OrderLine.objects.filter(order=order).values_list("product_id", flat=True)) == {
            x.pk,
            y.pk,
        }
        assert set(
            Purchase.objects.filter(order_ref=order.number).values_list("product_id", flat=True)
        ) == {x.pk, y.pk}
    # The updates wait in the database; nothing could be queued.
    assert set(PendingUpdate.objects.values_list("product_id", flat=True)) == {x.pk, y.pk}
    assert PendingUpdate.objects.count() == 6
    assert y.pk not in live_list(x)

    spare_redis.start()
    # The worker reconnects by itself (kombu's retry with backoff).
    wait_for(lambda: bool(app.control.ping(destination=[worker.name], timeout=0.5)), timeout=45)
    # The beat entry that catches up, run as a task on the worker: every pending update once.
    assert app.send_task(entry).get(timeout=30) == 2
    assert not PendingUpdate.objects.exists()
    assert live_list(x)[0] == y.pk and live_list(y)[0] == x.pk
    row = Recommendation.objects.get(
        build__state=Build.State.LIVE, kind=FBT, source_id=x.pk, target_id=y.pk
    )
    assert row.evidence["co_count"] == 3 and row.evidence["incremental"] is True
    # The pages show it (the worker started a new cache generation on the restarted Redis).
    assert fbt_widget(client, x)[0] == y.pk
    assert fbt_api(client, y)[0] == x.pk

    # And the normal path is back: the next checkout's own task applies its update in seconds.
    a, b = products[4], products[9]
    before = live_list(a)
    for i in range(3):
        checkout(client, a, b, email=f"after{i}@example.org")
    wait_for(lambda: not PendingUpdate.objects.exists() and live_list(a) != before, timeout=20)
    assert b.pk in live_list(a)


@pytest.mark.django_db(transaction=True)
def test_checkouts_while_redis_is_down_and_no_worker_runs(spare_redis: RedisServer) -> None:
    """No worker at all and Redis down: orders are recorded, and a worker-less catch-up (the
    service the beat task calls) applies every one of them later."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    make_shop(n_products=12, n_orders=120)
    x, y = make_product("Alone X"), make_product("Alone Y")
    rebuild(strategy=COCOUNT)
    app.conf.task_always_eager = False  # a real broker, which is down
    spare_redis.stop()
    client = Client()
    for i in range(3):
        _, took = checkout(client, x, y, email=f"alone{i}@example.org")
        assert took < 3.0
    assert Purchase.objects.filter(product_id=x.pk).count() == 3
    assert PendingUpdate.objects.count() == 6
    spare_redis.start()
    assert tasks.process_pending.apply().get() == 2
    assert live_list(x)[0] == y.pk and not PendingUpdate.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_checkout_and_pages_with_a_hung_redis(spare_redis: RedisServer) -> None:
    """A Redis that accepts connections but never answers: the cache gives up after its socket
    timeout, and the enqueue after the broker's, so the checkout ends and the page is served."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    if not (app.conf.broker_transport_options or {}).get("socket_timeout"):
        pytest.skip(
            "CELERY_BROKER_TRANSPORT_OPTIONS sets no socket_timeout: publishing to a Redis that "
            "hangs would block the checkout forever (see TESTING.md, Outage tests)"
        )
    make_shop(n_products=12, n_orders=120)
    x, y = make_product("Hung X"), make_product("Hung Y")
    rebuild(strategy=COCOUNT)
    app.conf.task_always_eager = False
    client = Client()
    spare_redis.pause()
    try:
        order, took = checkout(client, x, y, email="hung@example.org")
        assert took < 15.0, f"checkout took {took:.1f}s with Redis hung"
        started = time.monotonic()
        assert fbt_widget(client, x)
        page = time.monotonic() - started
        assert page < 15.0, f"product page took {page:.1f}s with Redis hung"
    finally:
        spare_redis.resume()
    assert Purchase.objects.filter(order_ref=order.number).count() == 2
    assert set(PendingUpdate.objects.values_list("product_id", flat=True)) == {x.pk, y.pk}


# --- a database error during a rebuild ----------------------------------------------------------


class DatabaseGone(CoCount):
    """Fails while ranking the way a database that went away makes a query fail."""

    name = "database_gone"

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        raise OperationalError("server closed the connection unexpectedly")


def rows_of(build: Build) -> list[tuple[str, int, int, int, float]]:
    return list(
        Recommendation.objects.filter(build=build)
        .order_by("kind", "source_id", "rank")
        .values_list("kind", "source_id", "target_id", "rank", "score")
    )


@pytest.mark.django_db
def test_database_error_in_a_rebuild_keeps_the_live_build() -> None:
    make_shop(n_products=12, n_orders=120)
    good = rebuild(strategy=COCOUNT)
    before = rows_of(good)
    with pytest.raises(OperationalError):
        rebuild(strategy=DatabaseGone())
    failed = Build.objects.exclude(pk=good.pk).get()
    assert failed.state == Build.State.FAILED and "OperationalError" in failed.error
    assert Build.objects.get(state=Build.State.LIVE).pk == good.pk
    assert rows_of(good) == before
    assert not Recommendation.objects.filter(build=failed).exists()


@pytest.mark.django_db(transaction=True)
def test_connection_killed_mid_rebuild_keeps_the_live_build() -> None:
    """The server ends the rebuild's connection (``pg_terminate_backend``) once it has started
    writing the new build's rows: the live build and its rows are untouched, and the next
    rebuild marks the dead one failed and removes what it wrote."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    products = make_shop(n_products=12, n_orders=120)
    good = rebuild(strategy=COCOUNT)
    before = rows_of(good)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    params = connection.get_connection_params()
    admin_dsn = {k: v for k, v in params.items() if k in {"host", "port", "user", "password"}}
    killed = threading.Event()

    def kill_when_writing(stage: str, fraction: float, rows: int) -> None:
        # The second progress report of the write stage comes after a COPY block went in.
        if stage == "write" and fraction > 0 and not killed.is_set():
            with psycopg.connect(dbname="postgres", autocommit=True, **admin_dsn) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            killed.set()

    with pytest.raises(DatabaseFailure):
        rebuild(strategy=COCOUNT, progress=kill_when_writing)
    assert killed.is_set()
    connection.close()  # what Django does at the end of a request with a broken connection
    assert Build.objects.get(state=Build.State.LIVE).pk == good.pk
    assert rows_of(good) == before
    dead = Build.objects.exclude(pk=good.pk).get()
    assert dead.state != Build.State.LIVE
    assert live_list(products[0]) == list(
        Recommendation.objects.filter(build=good, kind=FBT, source_id=products[0].pk)
        .order_by("rank")
        .values_list("target_id", flat=True)
    )
    # The next rebuild cleans up after the dead one.
    new = rebuild(strategy=COCOUNT)
    dead.refresh_from_db()
    assert dead.state == Build.State.FAILED
    assert not Recommendation.objects.filter(build=dead).exists()
    assert new.state == Build.State.LIVE
