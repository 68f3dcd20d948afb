"""Incremental updates: a checkout's products get fresh co-purchase lists within seconds.

``record_order`` writes a :class:`PendingUpdate` per product in the checkout's own transaction
and, on commit, :func:`schedule` enqueues one delayed task for the whole burst (a cache key is
the debounce). The task takes every pending product once, so a burst of orders costs one update
per product. When the broker is down the rows stay pending and the next task (or rebuild) takes
them: no order's update is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.core.cache import caches
from django.db import transaction
from django.utils import timezone

from crosssell.conf import settings
from crosssell.models import Build, PendingUpdate, Recommendation
from crosssell.services import cache as cs_cache
from crosssell.services.copurchase import co_purchase_counts

logger = logging.getLogger(__name__)
DEBOUNCE_KEY = "crosssell:incremental:scheduled"


def mark_pending(product_ids: Iterable[int]) -> None:
    """Record products whose lists need an update (call inside the order's transaction)."""
    PendingUpdate.objects.bulk_create([PendingUpdate(product_id=p) for p in set(product_ids)])


def schedule(product_ids: Sequence[int] = ()) -> bool:
    """Enqueue one delayed update task for the current burst; ``False`` if none was queued."""
    from crosssell import tasks

    delay = float(settings.INCREMENTAL_DELAY)
    try:
        if not caches[settings.CACHE_ALIAS].add(DEBOUNCE_KEY, 1, timeout=max(delay, 1.0)):
            return False  # a task for this burst is already on its way
    except Exception:
        logger.warning("cache down: scheduling the incremental update without debounce")
    try:
        # ignore_result: nothing reads it, and with a Redis result backend that is down,
        # subscribing to the result would retry for about 20 s inside the checkout's request.
        tasks.process_pending.apply_async(countdown=delay, ignore_result=True)
    except Exception:
        logger.warning("broker down: %d product(s) stay pending", len(product_ids), exc_info=True)
        try:
            caches[settings.CACHE_ALIAS].delete(DEBOUNCE_KEY)
        except Exception:
            logger.debug("cache down too", exc_info=True)
        return False
    return True


def process_pending(limit: int = 10_000) -> int:
    """Update every pending product once; returns how many products were updated."""
    with transaction.atomic():
        rows = list(
            PendingUpdate.objects.select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", "product_id")[:limit]
        )
        if not rows:
            return 0
        PendingUpdate.objects.filter(pk__in=[r[0] for r in rows]).delete()
        product_ids = sorted({r[1] for r in rows})
        update_products(product_ids)
    return len(product_ids)


def update_products(product_ids: Sequence[int]) -> int:
    """Refresh the live lists of ``product_ids`` with today's co-purchase counts.

    Pairs bought together are ranked by their fresh co-purchase count (the privacy threshold
    applies); the rest of the list (content and popularity slots) keeps its order behind them.
    The next full rebuild restores the blend. Returns how many rows were written.
    """
    live = Build.objects.filter(state=Build.State.LIVE).first()
    if live is None or not product_ids:
        return 0
    k = settings.LIST_LENGTH
    written = 0
    counts = co_purchase_counts(product_ids)
    kind = Recommendation.Kind.BOUGHT_TOGETHER
    with transaction.atomic():
        for pid in product_ids:
            fresh = [
                (t, co, cu) for t, co, cu in counts.get(pid, []) if cu >= settings.MIN_CUSTOMERS
            ][:k]
            existing = list(
                Recommendation.objects.filter(build=live, kind=kind, source_id=pid)
                .order_by("rank")
                .values("target_id", "score", "strategy", "status", "evidence")
            )
            fresh_ids = {t for t, _, _ in fresh}
            rows = [
                Recommendation(
                    build=live,
                    kind=kind,
                    source_id=pid,
                    target_id=t,
                    score=float(co),
                    strategy="cocount",
                    evidence={"co_count": co, "customers": cu, "incremental": True},
                )
                for t, co, cu in fresh
            ]
            statuses = {e["target_id"]: e["status"] for e in existing}
            rows += [
                Recommendation(build=live, kind=kind, source_id=pid, **e)
                for e in existing
                if e["target_id"] not in fresh_ids and e["strategy"] != "cocount"
            ]
            rows = rows[:k]
            for rank, row in enumerate(rows):
                row.rank = rank
                row.status = statuses.get(row.target_id, row.status)
            Recommendation.objects.filter(build=live, kind=kind, source_id=pid).delete()
            Recommendation.objects.bulk_create(rows)
            written += len(rows)
        Build.objects.filter(pk=live.pk).update(published_at=timezone.now())
        transaction.on_commit(cs_cache.bump)
    return written
