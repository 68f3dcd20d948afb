"""The Celery path on real worker processes, Redis and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction

from crosssell import tasks
from crosssell.models import Build, Recommendation
from crosssell.services.build import rebuild
from crosssell.services.purchases import Line, record_order
from crosssell.testing import live_list, paired_shop, wait_for
from tests.crosssell.strategies import COCOUNT, SLOW

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]
FBT = Recommendation.Kind.BOUGHT_TOGETHER


def make_shop(n_products: int = 30, n_orders: int = 600) -> list[Any]:
    return paired_shop(n_products, n_orders, n_customers=150, seed=7)


def rows_of(build_id: int) -> list[tuple[str, int, int, int, str, float]]:
    return list(
        Recommendation.objects.filter(build_id=build_id)
        .order_by("kind", "source_id", "rank")
        .values_list("kind", "source_id", "target_id", "rank", "strategy", "score")
    )


def test_rebuild_task_publishes_a_build(celery_workers: Any) -> None:
    products = make_shop()
    celery_workers("w1")
    build_id = tasks.rebuild.delay("test", COCOUNT).get(timeout=120)
    build = Build.objects.get(pk=build_id)
    assert build.state == Build.State.LIVE
    assert build.counts["orders"] == 600
    assert live_list(products[0])[0] == products[1].pk


def test_checkout_shows_up_within_five_seconds(celery_workers: Any) -> None:
    products = make_shop()
    rebuild(strategy=COCOUNT)
    a, b = products[0], products[5]
    assert live_list(a)[0] != b.pk
    celery_workers("w1", CROSSSELL_MIN_CUSTOMERS="1", CROSSSELL_INCREMENTAL_DELAY="1")
    for i in range(40):  # a burst: one update per product, not one per order
        with transaction.atomic():
            record_order(f"burst{i}", [Line(a.pk), Line(b.pk)], customer_ref=f"b{i}")
    took = wait_for(lambda: live_list(a)[:1] == [b.pk], timeout=5.0)
    assert took < 5.0
    # The burst left nothing pending: every order's products were updated.
    from crosssell.models import PendingUpdate

    wait_for(lambda: not PendingUpdate.objects.exists(), timeout=5.0)


def test_two_rebuilds_started_together_run_one_after_the_other(celery_workers: Any) -> None:
    make_shop()
    celery_workers("w1", concurrency=2, SLOW_STRATEGY_SECONDS="2")
    first, second = tasks.rebuild.delay("a", SLOW), tasks.rebuild.delay("b", SLOW)
    ids = [first.get(timeout=180), second.get(timeout=180)]
    builds = sorted(Build.objects.filter(pk__in=ids), key=lambda b: b.created_at)
    assert len(builds) == 2
    assert builds[0].finished_at is not None
    assert builds[0].finished_at <= builds[1].created_at
    assert Build.objects.get(state=Build.State.LIVE).pk == builds[1].pk


def test_killed_worker_leaves_the_live_build_and_the_task_completes_elsewhere(
    celery_workers: Any,
) -> None:
    products = make_shop()
    old = rebuild(strategy=COCOUNT)
    watched = products[:6]
    expected = {p.pk: live_list(p) for p in watched}
    assert all(len(v) == 12 for v in expected.values())
    seen: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        # A shopper polling throughout: never an empty or partial list, never a mixture.
        try:
            while not stop.is_set():
                for p in watched:
                    got = live_list(p)
                    if got != expected[p.pk]:
                        seen.append(f"{p.pk}: {got}")
                time.sleep(0.02)
        finally:
            connection.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        env = {"CELERY_VISIBILITY_TIMEOUT": "6", "CROSSSELL_LOCK_TTL": "5"}
        doomed = celery_workers("doomed", SLOW_STRATEGY_SECONDS="30", **env)
        result = tasks.rebuild.delay("killed", SLOW)
        wait_for(lambda: Build.objects.filter(state=Build.State.RUNNING).exists(), timeout=60)
        time.sleep(1.0)
        doomed.kill()
        assert Build.objects.get(state=Build.State.LIVE).pk == old.pk
        celery_workers("rescuer", SLOW_STRATEGY_SECONDS="1", **env)
        new_id = result.get(timeout=120)
    finally:
        stop.set()
        thread.join()
    assert seen == []
    assert new_id != old.pk
    assert Build.objects.get(state=Build.State.LIVE).pk == new_id
    assert rows_of(new_id) == rows_of(old.pk)
    lost = Build.objects.exclude(pk__in=[old.pk, new_id]).get()
    assert lost.state == Build.State.FAILED and "stopped" in lost.error


def test_chord_rebuild_on_two_workers_equals_a_single_process_rebuild(
    celery_workers: Any,
) -> None:
    make_shop(n_products=40)
    single = rebuild(strategy=COCOUNT)
    celery_workers("w1", CROSSSELL_SHARD_SIZE="7")
    celery_workers("w2", CROSSSELL_SHARD_SIZE="7")
    build_id = tasks.rebuild.delay("chord", COCOUNT).get(timeout=120)
    wait_for(
        lambda: Build.objects.filter(pk=build_id, state=Build.State.LIVE).exists(), timeout=120
    )
    build = Build.objects.get(pk=build_id)
    assert build.parameters["shards"] == 6
    assert rows_of(build_id) == rows_of(single.pk)
