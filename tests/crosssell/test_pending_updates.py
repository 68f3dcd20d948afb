"""Pending incremental updates left by orders whose task could not be queued (the broker was
unreachable) are applied by the periodic task on a real worker, and by the next rebuild, single
process or chord."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from crosssell import tasks
from crosssell.models import Build, PendingUpdate, Recommendation
from crosssell.services import incremental
from crosssell.services.build import rebuild
from crosssell.services.purchases import Line, record_order
from crosssell.testing import live_list, make_product, paired_shop, wait_for
from tests.crosssell.strategies import COCOUNT

pytestmark = pytest.mark.django_db(transaction=True)
FBT = Recommendation.Kind.BOUGHT_TOGETHER
Broker = Callable[[str], AbstractContextManager[None]]


def make_shop(n_products: int = 20, n_orders: int = 300) -> list[Any]:
    return paired_shop(n_products, n_orders, n_customers=120, seed=5)


def order(ref: str, customer: str, *products: Any) -> None:
    """One committed order, as a checkout records it (its on-commit hook runs)."""
    with transaction.atomic():
        record_order(ref, [Line(p.pk) for p in products], customer_ref=customer)


def orders_while_the_broker_is_down(broker: Broker, port: int, x: Any, y: Any) -> None:
    """Three customers buy ``x`` and ``y`` while no task can be queued: enough customers for
    the pair to be published, and nothing applied yet."""
    with broker(f"redis://127.0.0.1:{port}/0"):
        for i in range(3):
            order(f"down-{x.pk}-{i}", f"down-customer-{i}", x, y)
    assert set(PendingUpdate.objects.values_list("product_id", flat=True)) == {x.pk, y.pk}
    assert y.pk not in live_list(x)


@pytest.mark.celery_worker
def test_the_periodic_task_applies_them_once_a_worker_runs(
    celery_workers: Callable[..., Any],
    celery_broker: Broker,
    unreachable_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shop.celery import app

    make_shop()
    x, y, z = (make_product(f"Late {c}", category="C9") for c in "XYZ")
    rebuild(strategy=COCOUNT)
    caplog.set_level(logging.INFO, logger="crosssell")
    orders_while_the_broker_is_down(celery_broker, unreachable_port, x, y)
    assert PendingUpdate.objects.count() == 6

    celery_workers("w1", CROSSSELL_INCREMENTAL_DELAY="0.5")
    # The project's beat entry (the README schedules the same one) runs on the worker.
    entry = django_settings.CELERY_BEAT_SCHEDULE["crosssell-pending-updates"]
    assert entry["task"] == tasks.process_pending.name
    assert app.send_task(entry["task"]).get(timeout=30) == 2
    assert not PendingUpdate.objects.exists()
    assert live_list(x)[0] == y.pk and live_list(y)[0] == x.pk

    # The broker is back for this process too: the next order queues its own task again.
    for i in range(3):
        order(f"back-{i}", f"back-customer-{i}", x, z)
    wait_for(lambda: z.pk in live_list(x) and not PendingUpdate.objects.exists(), timeout=30)
    said = [r.getMessage() for r in caplog.records if r.name.startswith("crosssell")]
    assert sum("cannot queue" in m for m in said) == 1
    assert sum("takes tasks again" in m for m in said) == 1


def test_the_next_rebuild_applies_them(celery_broker: Broker, unreachable_port: int) -> None:
    make_shop()
    x, y, z = (make_product(f"Late {c}", category="C9") for c in "XYZ")
    rebuild(strategy=COCOUNT)
    orders_while_the_broker_is_down(celery_broker, unreachable_port, x, y)

    def late_order(stage: str, fraction: float, rows: int) -> None:
        # Committed once the rebuild has read the purchases: this build does not count it, so
        # its update must stay pending for the next task.
        if stage == "fit" and not PendingUpdate.objects.filter(product_id=z.pk).exists():
            incremental.mark_pending([z.pk])

    build = rebuild(strategy=COCOUNT, progress=late_order)
    assert build.state == Build.State.LIVE
    assert live_list(x)[0] == y.pk
    assert list(PendingUpdate.objects.values_list("product_id", flat=True)) == [z.pk]


@pytest.mark.celery_worker
def test_a_chord_rebuild_applies_them(
    celery_workers: Callable[..., Any], celery_broker: Broker, unreachable_port: int
) -> None:
    make_shop()
    x, y = (make_product(f"Late {c}", category="C9") for c in "XY")
    rebuild(strategy=COCOUNT)
    orders_while_the_broker_is_down(celery_broker, unreachable_port, x, y)
    celery_workers("w1", CROSSSELL_SHARD_SIZE="7")
    build_id = tasks.rebuild.delay("chord", COCOUNT).get(timeout=120)
    wait_for(lambda: Build.objects.filter(pk=build_id, state=Build.State.LIVE).exists(), 120)
    assert Build.objects.get(pk=build_id).parameters["shards"] == 4
    assert live_list(x)[0] == y.pk
    assert not PendingUpdate.objects.exists()
