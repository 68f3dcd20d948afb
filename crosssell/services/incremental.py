"""Incremental updates: a checkout's products get fresh co-purchase lists within seconds.

``record_order`` writes a :class:`PendingUpdate` per product in the checkout's own transaction
and, on commit, :func:`schedule` enqueues one delayed task for the whole burst (a cache key is
the debounce, released when the task starts). The task takes every pending product once, so a
burst of orders costs one update per product. When the broker is down the rows stay pending and
the next task, the periodic ``crosssell.process_pending`` or the next rebuild takes them: no
order's update is lost. After an attempt that failed slowly (a broker host that does not answer
makes it wait for the connect timeout), the process leaves the broker alone for
``CROSSSELL_BROKER_BACKOFF`` seconds, so such an outage costs one checkout that timeout, not
every checkout. A refused connection fails in milliseconds: it is tried again on every checkout,
so updates are queued again as soon as the broker is back.

The task is queued through a sender that ``crosssell.apps`` registers (the Celery one in
``crosssell.tasks``): a service never imports the tasks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from django.core.cache import caches
from django.db import transaction
from django.utils import timezone

from crosssell.conf import DEFAULTS, settings
from crosssell.models import Build, PendingUpdate, Recommendation
from crosssell.services import cache as cs_cache
from crosssell.services import cart_store
from crosssell.services.copurchase import co_purchase_counts

logger = logging.getLogger(__name__)
DEBOUNCE_KEY = "crosssell:incremental:scheduled"


def mark_pending(product_ids: Iterable[int]) -> None:
    """Record products whose lists need an update (call inside the order's transaction)."""
    PendingUpdate.objects.bulk_create([PendingUpdate(product_id=p) for p in set(product_ids)])


class BrokerUnavailable(Exception):
    """The update task could not be queued: the broker is down, or the project has none."""


#: Queues ``crosssell.process_pending`` to run after the given seconds; raises
#: :class:`BrokerUnavailable` when it cannot (after one bounded attempt, never a retry loop).
Sender = Callable[[float], None]
_sender: Sender | None = None

#: While the broker stays down, a reminder is logged this often (seconds), not once per order.
REMIND_EVERY = 600.0
#: A failed attempt that took at least this long (seconds) waited for a timeout: the broker is
#: then left alone for ``CROSSSELL_BROKER_BACKOFF`` seconds. Faster failures are not backed off.
SLOW_ATTEMPT = 0.25


def set_sender(sender: Sender | None) -> Sender | None:
    """Register the function that queues the update task; returns the one it replaces."""
    global _sender
    previous, _sender = _sender, sender
    return previous


class _Outage:
    """What this process knows of the broker: down since when, and when it last said so."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget a past outage (tests)."""
        self.since: float | None = None
        self.warned_at = 0.0
        self.failed_at: float | None = None
        self.orders = 0

    def backing_off(self, seconds: float) -> bool:
        """Whether the last attempt failed less than ``seconds`` ago; if so, the order is counted
        as one that could not queue its update, and the broker is not tried."""
        with self._lock:
            if self.failed_at is None or time.monotonic() - self.failed_at >= seconds:
                return False
            self.orders += 1
            return True

    def failed(self, back_off: bool = False) -> bool:
        """Count an order that could not queue its update, and with ``back_off`` start the
        back-off; ``True`` when a warning is due."""
        now = time.monotonic()
        with self._lock:
            self.orders += 1
            self.failed_at = now if back_off else None
            if self.since is None or now - self.warned_at >= REMIND_EVERY:
                self.since = self.since or now
                self.warned_at = now
                return True
            return False

    def recovered(self) -> tuple[float, int] | None:
        """The outage that just ended (seconds, orders), if there was one."""
        with self._lock:
            if self.since is None:
                return None
            ended = (time.monotonic() - self.since, self.orders)
            self.reset()
            return ended


outage = _Outage()


def schedule(product_ids: Sequence[int] = ()) -> bool:
    """Enqueue one delayed update task for the current burst; ``False`` if none was queued.

    Called after the order's commit: it never raises, and with the broker down it costs one
    bounded connection attempt and logs one warning per outage (not one per order); the
    products stay pending for the next task or rebuild. For ``CROSSSELL_BROKER_BACKOFF``
    seconds after an attempt that failed slowly (``SLOW_ATTEMPT``: it waited for a timeout),
    the process does not try the broker at all.

    Parameters
    ----------
    product_ids
        The order's products (for the log only: the task takes every pending product).

    Returns
    -------
    bool
        Whether a task was queued (or, in eager mode, run).
    """
    if _sender is None:
        logger.error("crosssell: no task sender is registered (is 'crosssell' in INSTALLED_APPS?)")
        return False
    backoff = _backoff()
    if outage.backing_off(backoff):
        return False  # the broker failed moments ago: the products wait, like the last order's
    delay = float(settings.INCREMENTAL_DELAY)
    try:
        if not caches[settings.CACHE_ALIAS].add(DEBOUNCE_KEY, 1, timeout=max(delay, 1.0)):
            return False  # a task for this burst is already on its way
    except Exception:
        logger.warning("cache down: scheduling the incremental update without debounce")
    started = time.monotonic()
    try:
        _sender(delay)
    except BrokerUnavailable as exc:
        _release_debounce()
        took = time.monotonic() - started
        back_off = backoff > 0 and took >= SLOW_ATTEMPT
        if outage.failed(back_off):
            logger.warning(
                "crosssell: cannot queue the incremental update (%s). Orders are still recorded; "
                "their products wait in crosssell.PendingUpdate (%d order(s) so far) until a "
                "worker runs the periodic task crosssell.process_pending or the next rebuild "
                "(README, Celery).%s Not repeated for %d s while the broker stays down.",
                exc,
                outage.orders,
                f" The attempt took {took:.1f} s, so checkouts of the next {backoff:g} s do not "
                "try the broker."
                if back_off
                else "",
                REMIND_EVERY,
            )
        return False
    except Exception:
        # The update itself failed (eager mode runs it here): its rows stay pending.
        _release_debounce()
        logger.exception("crosssell: incremental update of %d product(s) failed", len(product_ids))
        return False
    ended = outage.recovered()
    if ended is not None:
        logger.info(
            "crosssell: the broker takes tasks again after %.0f s; the %d order(s) that waited "
            "are applied by this task",
            *ended,
        )
    return True


def _backoff() -> float:
    """``CROSSSELL_BROKER_BACKOFF`` in seconds (a value that is not a number counts as the
    default)."""
    value = settings.BROKER_BACKOFF
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return float(DEFAULTS["BROKER_BACKOFF"])


def _release_debounce() -> None:
    """Let the next order queue a task (this burst's task did not go out, or has started)."""
    try:
        caches[settings.CACHE_ALIAS].delete(DEBOUNCE_KEY)
    except Exception:
        logger.debug("cache down: the debounce key expires by itself", exc_info=True)


def pending_snapshot() -> list[int]:
    """The pending rows committed so far (a rebuild takes them before it extracts).

    Returns
    -------
    list of int
        Primary keys of :class:`PendingUpdate` rows. Their orders were committed before this
        query, so an extraction that starts afterwards counts them.
    """
    return list(PendingUpdate.objects.order_by("pk").values_list("pk", flat=True))


def clear_pending(pks: Sequence[int], batch: int = 10_000) -> int:
    """Delete the pending rows a published rebuild covered; returns how many were deleted.

    Rows written after :func:`pending_snapshot` stay for the next incremental task.
    """
    deleted = 0
    for i in range(0, len(pks), batch):
        deleted += PendingUpdate.objects.filter(pk__in=pks[i : i + batch]).delete()[0]
    return deleted


def process_pending(limit: int = 10_000) -> int:
    """Update every pending product once; returns how many products were updated."""
    # The burst's task has started: an order committed from now on queues the next one (in
    # eager mode that is the very next order, so no order waits for a later one).
    _release_debounce()
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


def _evidence_counts(evidence: object) -> tuple[int, int] | None:
    """``(co_count, customers)`` of a row's evidence, or ``None`` if it names no co-purchase."""
    if not isinstance(evidence, dict):
        return None
    co, customers = evidence.get("co_count"), evidence.get("customers")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (co, customers)):
        return None
    return int(co), int(customers)  # type: ignore[arg-type]


def _up_to_date(
    existing: Sequence[Mapping[str, Any]],
    above: list[tuple[int, int, int]],
    fresh: list[tuple[int, int, int]],
) -> bool:
    """Whether a list already shows its pairs at or above the threshold as they are now: each
    of the ``fresh`` ones with today's counts, and no row naming a count that changed."""
    shown = {e["target_id"]: _evidence_counts(e["evidence"]) for e in existing}
    now = {t: (co, cu) for t, co, cu in above}
    if any(shown.get(t) != (co, cu) for t, co, cu in fresh):
        return False
    minimum = settings.MIN_CUSTOMERS
    return all(
        counts is None or counts[1] < minimum or now.get(t) == counts for t, counts in shown.items()
    )


def update_products(product_ids: Sequence[int]) -> int:
    """Refresh the live lists of ``product_ids`` with today's co-purchase counts.

    Pairs bought together are ranked by their fresh co-purchase count (the privacy threshold
    applies); the rest of the list (content and popularity slots) keeps its order behind them.
    The next full rebuild restores the blend. Returns how many rows were written.

    Only pairs bought together by at least ``CROSSSELL_MIN_CUSTOMERS`` distinct identities are
    read, and a product whose list already shows those pairs with today's counts is left as it
    is: an order of a pair still below the threshold changes no list.
    """
    live = Build.live()
    if live is None or not product_ids:
        return 0
    k = settings.LIST_LENGTH
    written = 0
    counts = co_purchase_counts(product_ids)
    kind = Recommendation.Kind.BOUGHT_TOGETHER
    with transaction.atomic():
        for pid in product_ids:
            above = [
                (t, co, cu) for t, co, cu in counts.get(pid, []) if cu >= settings.MIN_CUSTOMERS
            ]
            fresh = above[:k]
            existing = list(
                Recommendation.objects.filter(build=live, kind=kind, source_id=pid)
                .order_by("rank")
                .values("target_id", "score", "strategy", "status", "evidence")
            )
            if _up_to_date(existing, above, fresh):
                continue
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
        # the same products' cart vectors, from the same counts (weighed as the build did)
        cart_store.refresh_vectors(live, product_ids, counts)
        Build.objects.filter(pk=live.pk).update(published_at=timezone.now())
        cs_cache.bump_on_commit()
    return written
