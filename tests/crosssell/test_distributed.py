"""A rebuild as a Celery chord (``crosssell.services.distributed``) on real worker processes,
Redis and PostgreSQL: the shards write what one process writes, the rebuild lock is held from
the extraction to the callback, and a failed shard fails the build and keeps the live one.

The chord is started as production starts it, by the ``crosssell.rebuild`` task above
``CROSSSELL_SHARD_SIZE`` products (the workers read the shard size from their environment).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest
from django.core.files.storage import default_storage

from crosssell import tasks
from crosssell.conf import settings as cs_settings
from crosssell.models import Build, CartVector, Recommendation
from crosssell.services import curation
from crosssell.services.build import rebuild
from crosssell.services.locks import REBUILD_LOCK, CacheLock, LockTimeout
from crosssell.testing import paired_shop, wait_for
from tests.crosssell.strategies import COCOUNT, FAILS_ON_LAST, SLOW

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]
FBT = Recommendation.Kind.BOUGHT_TOGETHER
ALSO = Recommendation.Kind.ALSO_BOUGHT


def lists_of(build_id: int) -> dict[tuple[str, int], list[tuple[Any, ...]]]:
    """Every (kind, source)'s list in rank order: target, rank, strategy, score, evidence,
    status."""
    lists: dict[tuple[str, int], list[tuple[Any, ...]]] = defaultdict(list)
    rows = (
        Recommendation.objects.filter(build_id=build_id)
        .order_by("kind", "source_id", "rank", "target_id")
        .values_list(
            "kind", "source_id", "target_id", "rank", "strategy", "score", "evidence", "status"
        )
    )
    for kind, source, *rest in rows:
        lists[(kind, source)].append(tuple(rest))
    return dict(lists)


def cart_vectors_of(build_id: int) -> dict[int, bytes]:
    return {
        product: bytes(terms)
        for product, terms in CartVector.objects.filter(build_id=build_id).values_list(
            "product_id", "terms"
        )
    }


def wait_done(build_id: int, timeout: float = 120) -> Build:
    """The chord's build once it is live or failed (``ready`` is a step of going live)."""
    done = [Build.State.LIVE, Build.State.FAILED]
    wait_for(lambda: Build.objects.filter(pk=build_id, state__in=done).exists(), timeout=timeout)
    return Build.objects.get(pk=build_id)


def lock() -> CacheLock:
    """The rebuild lock, as any process sees it."""
    return CacheLock(REBUILD_LOCK)


def test_a_chord_writes_the_same_lists_as_one_process(celery_workers: Any) -> None:
    products = paired_shop(44, 700, n_customers=120, seed=11)
    a, b, c = products[0], products[1], products[9]
    curation.reject(a.pk, b.pk)  # a decision every shard's rows must carry alike
    curation.pin(c.pk, products[8].pk)  # its companion: the build's row is marked pinned
    single = rebuild(trigger="single", strategy=COCOUNT)
    celery_workers("w1", CROSSSELL_SHARD_SIZE="8")  # 6 shards, the last one of 4 products
    celery_workers("w2", CROSSSELL_SHARD_SIZE="8")
    build_id = tasks.rebuild.delay("chord", COCOUNT).get(timeout=120)
    build = wait_done(build_id)
    assert build.state == Build.State.LIVE, build.error
    assert build.parameters["shards"] == 6
    assert Build.objects.get(pk=single.pk).state == Build.State.READY  # superseded, kept

    want, got = lists_of(single.pk), lists_of(build_id)
    kinds = {kind for kind, _ in got}
    assert kinds == set(cs_settings.KINDS) and ALSO in kinds
    assert {src for _, src in got} == {p.pk for p in products}  # every shard wrote its sources
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == want[key], key  # same targets, ranks, scores and evidence
    status = {row[0]: row[-1] for row in got[(FBT, a.pk)]}
    assert status[b.pk] == Recommendation.Status.REJECTED  # the decision, copied on publish
    pinned = {row[0]: row[-1] for row in got[(FBT, c.pk)]}
    assert pinned[products[8].pk] == Recommendation.Status.PINNED
    assert build.counts["recommendations"] == Recommendation.objects.filter(build=build).count()
    assert cart_vectors_of(build_id) == cart_vectors_of(single.pk)
    # tuned once, by the chord's first task, on the same orders as the single process
    tuned = Build.objects.get(pk=single.pk).metrics.get("tuning")
    assert tuned is not None and build.metrics.get("tuning", {}).keys() == tuned.keys()


def test_the_lock_is_held_from_the_extraction_to_the_callback(celery_workers: Any) -> None:
    # Four shards run one after another on one worker, each longer than the lock's TTL, and
    # the whole chord lasts several TTLs: the lock must never lapse in between, since a
    # second rebuild starting then would fail this one and delete its rows.
    paired_shop(32, 400, n_customers=100, seed=5)
    previous = rebuild(trigger="single", strategy=COCOUNT)
    ttl = 2
    celery_workers(
        "w1",
        CROSSSELL_SHARD_SIZE="8",
        CROSSSELL_LOCK_TTL=str(ttl),
        SLOW_STRATEGY_SECONDS="1.5",
    )
    started = time.monotonic()
    build_id = tasks.rebuild.delay("chord", SLOW).get(timeout=120)
    owners: list[str | None] = []
    refused = 0
    while Build.objects.get(pk=build_id).state in (Build.State.RUNNING, Build.State.READY):
        owners.append(lock().owner())
        if refused < 2:
            # Another rebuild asking meanwhile is refused at once and changes nothing.
            with pytest.raises(LockTimeout):
                rebuild(trigger="second", strategy=COCOUNT, wait=0)
            refused += 1
        time.sleep(0.1)
        assert time.monotonic() - started < 120, "the chord did not finish"
    build = Build.objects.get(pk=build_id)
    assert build.state == Build.State.LIVE, build.error
    assert time.monotonic() - started > 2 * ttl  # the chord outlived the TTL
    assert len(owners) > 10
    assert set(owners) == {build.lock_token}  # the build's own token, never free between
    wait_for(lock().is_free, timeout=5)  # released by the callback
    assert not Build.objects.filter(trigger="second").exists()
    assert Build.objects.get(pk=previous.pk).state == Build.State.READY
    assert not default_storage.exists(
        f"{cs_settings.MODEL_STORAGE_PREFIX}/builds/{build_id}/extracted.npz"
    )  # the stored matrix is dropped with the lock
    rebuild(trigger="after", strategy=COCOUNT, wait=0)  # the next rebuild starts at once


def test_a_failed_shard_fails_the_build_and_keeps_the_live_one(celery_workers: Any) -> None:
    products = paired_shop(30, 400, n_customers=100, seed=3)
    live = rebuild(trigger="single", strategy=COCOUNT)
    before = lists_of(live.pk)
    # 5 shards; the last one fails (no tuning or offline metrics: they would ask the strategy
    # about the last item before any shard does)
    celery_workers(
        "w1", CROSSSELL_SHARD_SIZE="7", CROSSSELL_TUNE="0", CROSSSELL_OFFLINE_METRICS="0"
    )
    build_id = tasks.rebuild.delay("chord", FAILS_ON_LAST).get(timeout=120)
    build = wait_done(build_id)
    assert build.state == Build.State.FAILED
    assert "shard" in build.error
    assert build.finished_at is not None
    # The live build and its lists are untouched; the failed build left no rows behind.
    assert Build.objects.get(state=Build.State.LIVE).pk == live.pk
    assert lists_of(live.pk) == before
    assert (FBT, products[0].pk) in before
    wait_for(
        lambda: not Recommendation.objects.filter(build_id=build_id).exists(), timeout=10
    )  # the shards that had finished wrote rows: they go with the build
    wait_for(lock().is_free, timeout=10)  # the error callback released the lock
    assert not default_storage.exists(
        f"{cs_settings.MODEL_STORAGE_PREFIX}/builds/{build_id}/extracted.npz"
    )
    # The next rebuild starts at once and goes live.
    after = rebuild(trigger="after", strategy=COCOUNT, wait=0)
    assert after.state == Build.State.LIVE
    assert lists_of(after.pk) == before
