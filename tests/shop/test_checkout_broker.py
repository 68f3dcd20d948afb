"""The sample shop's checkout when Celery's broker cannot take the update task, and in eager
mode (the embedded default): the order and its pending update are always recorded."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from crosssell.checks import celery_warnings
from crosssell.models import PendingUpdate, Product, Purchase
from crosssell.services import incremental
from shop import demo
from shop.celery import app
from shop.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_rate_limits(settings: Any) -> None:
    settings.SHOP_RATE_LIMITS = {}  # several checkouts in a row from one client


def sellable(n: int) -> list[Product]:
    return list(Product.objects.filter(is_active=True, stock__gte=20, price__gt=0)[:n])


def check_out(client: Client, capture: Any, products: list[Product], email: str) -> Order:
    """Check out ``products`` as a guest, running the on-commit hooks as a real commit does."""
    resp = client.post(reverse("shop:cart-add"), {"product_id": [p.pk for p in products]})
    assert resp.status_code == 302
    with capture(execute=True):
        resp = client.post(reverse("shop:checkout"), {"name": "Broker test", "email": email})
    assert resp.status_code == 302 and resp["Location"] == reverse("shop:thanks"), resp
    return Order.objects.get(email=email)


class ConnectSpy:
    """Counts this process's TCP connection attempts to one port (and lets them happen)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, port: int) -> None:
        self.port, self.attempts = port, 0
        real = socket.socket.connect

        def connect(sock: socket.socket, address: Any) -> Any:
            if isinstance(address, tuple) and address[1:2] == (port,):
                self.attempts += 1
            return real(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A local port whose connections hang until the client's connect timeout, as a broker
    host that drops packets: it listens with a backlog of 0, never accepts, and one connection
    fills the queue, so the kernel drops further SYNs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port: int = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    with pytest.raises(TimeoutError):  # really hanging: the next connection waits
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    try:
        yield port
    finally:
        filler.close()
        server.close()


class Clock:
    """incremental's clock, moved forward on demand (only that module sees it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0

        class Shifted:
            @staticmethod
            def monotonic() -> float:
                return time.monotonic() + self.offset

        monkeypatch.setattr(incremental, "time", Shifted)


def test_checkouts_with_the_broker_unreachable_record_everything_and_warn_once(
    demo_shop: demo.Summary,
    celery_broker: Callable[[str], AbstractContextManager[None]],
    unreachable_port: int,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.CROSSSELL_BROKER_BACKOFF = 30.0  # the default: a refused connection never waits
    products = sellable(8)
    client = Client()
    spy = ConnectSpy(monkeypatch, unreachable_port)
    caplog.set_level(logging.INFO, logger="crosssell")
    with celery_broker(f"redis://127.0.0.1:{unreachable_port}/0"):
        # Giving up fast is the broker's connect timeout, bounded by the settings (a refused
        # connection does not even wait for it), times one attempt per checkout.
        assert app.conf.broker_transport_options["socket_connect_timeout"] <= 1.0
        assert not [m.id for m in celery_warnings(app)]
        orders = [
            check_out(
                client,
                django_capture_on_commit_callbacks,
                products[2 * i : 2 * i + 2],
                f"down{i}@example.org",
            )
            for i in range(4)
        ]
    for i, order in enumerate(orders):
        bought = {p.pk for p in products[2 * i : 2 * i + 2]}
        assert set(order.lines.values_list("product_id", flat=True)) == bought
        assert (
            set(
                Purchase.objects.filter(order_ref=order.number).values_list("product_id", flat=True)
            )
            == bought
        )
    # Every order's update waits for the next task or rebuild.
    assert set(PendingUpdate.objects.values_list("product_id", flat=True)) == {
        p.pk for p in products
    }
    # One connection attempt per checkout: no retry loop inside the request, and no back-off
    # after a refusal (it cost nothing; the next order's task goes out once the broker is back).
    assert spy.attempts == len(orders)
    # One warning for the outage, without a traceback, not one per order.
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].exc_info is None
    message = warnings[0].getMessage()
    assert f"127.0.0.1:{unreachable_port}" in message and "crosssell.process_pending" in message


def test_eager_mode_leaves_no_order_pending_inside_the_debounce_window(
    demo_shop: demo.Summary,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """``make run``'s embedded default: tasks run in the web process. Orders placed within
    CROSSSELL_INCREMENTAL_DELAY of each other are each applied at once, none waits for a later
    order or a rebuild."""
    settings.CROSSSELL_INCREMENTAL_DELAY = 2.0
    assert app.conf.task_always_eager
    products = sellable(6)
    client = Client()
    for i in range(3):
        check_out(
            client, django_capture_on_commit_callbacks, products[2 * i : 2 * i + 2], f"e{i}@x.org"
        )
        assert not PendingUpdate.objects.exists(), f"order {i} stays pending"


def test_a_broker_that_does_not_answer_is_left_alone_for_the_backoff(
    demo_shop: demo.Summary,
    celery_broker: Callable[[str], AbstractContextManager[None]],
    blackhole_port: int,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    """A broker host that drops packets costs a checkout the connect timeout: the next
    checkouts within CROSSSELL_BROKER_BACKOFF do not try it (their products stay pending);
    after it, one checkout tries again."""
    settings.CROSSSELL_BROKER_BACKOFF = 30.0
    timeout = app.conf.broker_transport_options["socket_connect_timeout"]
    assert incremental.SLOW_ATTEMPT < timeout <= 1.0
    products = sellable(6)
    client = Client()
    spy = ConnectSpy(monkeypatch, blackhole_port)
    clock = Clock(monkeypatch)
    caplog.set_level(logging.INFO, logger="crosssell")

    def timed_checkout(i: int) -> float:
        started = time.monotonic()
        check_out(
            client,
            django_capture_on_commit_callbacks,
            products[2 * i : 2 * i + 2],
            f"hole{i}@example.org",
        )
        return time.monotonic() - started

    with celery_broker(f"redis://127.0.0.1:{blackhole_port}/0"):
        first = timed_checkout(0)
        assert spy.attempts >= 1 and first >= timeout * 0.9  # waited for the connect timeout
        tried = spy.attempts
        clock.offset = 29.0  # within the back-off
        second = timed_checkout(1)
        assert spy.attempts == tried  # no connection attempt at all
        assert second < timeout / 2, second
        clock.offset = 31.0  # the back-off is over: this checkout tries again
        timed_checkout(2)
        assert spy.attempts > tried
    assert set(PendingUpdate.objects.values_list("product_id", flat=True)) == {
        p.pk for p in products
    }
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one outage, one warning
    assert "checkouts of the next 30 s do not try the broker" in warnings[0].getMessage()


def test_backoff_0_tries_the_broker_on_every_checkout(
    demo_shop: demo.Summary,
    celery_broker: Callable[[str], AbstractContextManager[None]],
    blackhole_port: int,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.CROSSSELL_BROKER_BACKOFF = 0
    products = sellable(4)
    client = Client()
    spy = ConnectSpy(monkeypatch, blackhole_port)
    with celery_broker(f"redis://127.0.0.1:{blackhole_port}/0"):
        check_out(client, django_capture_on_commit_callbacks, products[:2], "b0@example.org")
        tried = spy.attempts
        check_out(client, django_capture_on_commit_callbacks, products[2:], "b1@example.org")
    assert tried >= 1 and spy.attempts == 2 * tried
