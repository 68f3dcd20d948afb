"""The full rebuild: extract, fit, blend, filter for privacy, write a Build, make it live."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.module_loading import import_string

from crosssell.conf import settings
from crosssell.engine.base import Interactions, ItemRecommender
from crosssell.engine.cooccurrence import cooccurrence
from crosssell.engine.popularity import Popularity
from crosssell.models import Build, Recommendation
from crosssell.services import cache as cs_cache
from crosssell.services import exclusions
from crosssell.services.extract import Extracted, extract
from crosssell.services.locks import CacheLock, LockTimeout

logger = logging.getLogger(__name__)
ProgressFn = Callable[[str, float, int], None]
WRITE_BATCH = 5_000


@dataclass
class Rows:
    """The recommendations of one kind, as parallel arrays of item indices."""

    src: npt.NDArray[np.int64]
    dst: npt.NDArray[np.int64]
    rank: npt.NDArray[np.int64]
    score: npt.NDArray[np.float32]
    strategy: list[str]
    evidence: dict[str, npt.NDArray[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.src)


def default_strategy() -> ItemRecommender:
    """The blend the shop serves: ``CROSSSELL_STRATEGIES`` (or the engine's default steps), with
    the stored neural model first for products with few sales when one has been trained."""
    from crosssell.engine.blend import DEFAULT_STEPS, Blend
    from crosssell.engine.wrappers import ColdOnly
    from crosssell.services import neural

    steps: list[Any] = list(settings.STRATEGIES or DEFAULT_STEPS)
    max_sales = settings.NEURAL_MAX_SALES
    if max_sales is not None and neural.current_version() is not None:
        steps.insert(0, ColdOnly(neural.StoredNeural(), max_sales=max_sales))
    return Blend(steps=steps)


def rebuild(
    *,
    trigger: str = "manual",
    strategy: ItemRecommender | str | None = None,
    progress: ProgressFn | None = None,
    task_id: str = "",
    wait: float | None = None,
) -> Build:
    """Recompute every product's recommendations in this process and make them live.

    Parameters
    ----------
    trigger
        Who asked: ``"manual"``, ``"schedule"``, ``"admin"``, ``"demo"``...
    strategy
        A strategy instance or registry name; by default :func:`default_strategy`.
    progress
        Called as ``progress(stage, fraction, rows)``; the build's ``progress`` field is kept
        up to date as well, so the admin can show it.
    wait
        Seconds to wait for a rebuild that is already running (default ``CROSSSELL_LOCK_WAIT``).

    Returns
    -------
    Build
        The new live build. On any failure the build is marked failed with its error, the
        previous build stays live, and the exception propagates.
    """
    lock = CacheLock("rebuild", wait=settings.LOCK_WAIT if wait is None else wait)
    if not lock.acquire():
        raise LockTimeout("another rebuild is running")
    try:
        model = resolve_strategy(strategy)
        build = start_build(trigger, task_id, model)
        return run_build(build, model, _Reporter(build, progress, lock))
    finally:
        lock.release()


def resolve_strategy(strategy: ItemRecommender | str | None) -> ItemRecommender:
    """A strategy instance from an instance, a registry name or dotted path, or the default."""
    if strategy is None:
        return default_strategy()
    if isinstance(strategy, str) and "." in strategy:
        cls = import_string(strategy)
        return cls()  # type: ignore[no-any-return]
    if isinstance(strategy, str):
        from crosssell.engine import registry

        built: ItemRecommender = registry.build_strategy(strategy)
        return built
    return strategy


def start_build(trigger: str, task_id: str, model: ItemRecommender) -> Build:
    """Create the running build (call with the rebuild lock held).

    A build still marked running now lost its worker (the lock is ours, so nobody runs it): it
    is marked failed.
    """
    Build.objects.filter(state=Build.State.RUNNING).update(
        state=Build.State.FAILED,
        error="The worker running this build stopped before it finished.",
        finished_at=timezone.now(),
    )
    Recommendation.objects.filter(build__state=Build.State.FAILED).delete()
    return Build.objects.create(
        state=Build.State.RUNNING,
        trigger=trigger,
        task_id=task_id,
        parameters={
            "strategy": getattr(model, "name", type(model).__name__),
            "min_customers": settings.MIN_CUSTOMERS,
            "list_length": settings.LIST_LENGTH,
        },
    )


def run_build(build: Build, model: ItemRecommender, report: _Reporter) -> Build:
    """Extract, fit, rank, write and publish ``build``; marks it failed on any error."""
    started = time.perf_counter()
    try:
        report("extract", 0.0, 0)
        ex = extract(progress=report)
        ex.data.extra.setdefault("item_ids", ex.product_ids)
        report("fit", 0.0, ex.n_lines)
        fit_started = time.perf_counter()
        model.fit(ex.data)
        fit_seconds = time.perf_counter() - fit_started
        report("rank", 0.0, ex.n_lines)
        rows = compute_rows(
            ex.data,
            model,
            settings.LIST_LENGTH,
            settings.MIN_CUSTOMERS,
            excluded=exclusion_filter(ex),
        )
        report("write", 0.0, len(rows))
        written = write_rows(build, ex, rows, Recommendation.Kind.BOUGHT_TOGETHER, report)
        finish_build(build, ex, written, {"fit_seconds": round(fit_seconds, 3)})
    except BaseException as exc:
        fail_build(build, exc)
        raise
    logger.info("crosssell build #%s live in %.1fs", build.pk, time.perf_counter() - started)
    build.refresh_from_db()
    return build


def exclusion_filter(
    ex: Extracted,
) -> Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.bool_]] | None:
    """The merchant's exclusions as a function of item-index pairs (``None`` if none)."""
    rules = exclusions.load_rules(cached=False)
    if not rules:
        return None
    pids = ex.product_ids
    cats = ex.data.content.categories if ex.data.content else [""] * len(pids)

    def excluded(src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        flags = exclusions.mask(
            rules,
            pids[src].tolist(),
            [cats[i] for i in src.tolist()],
            pids[dst].tolist(),
            [cats[i] for i in dst.tolist()],
        )
        return np.asarray(flags, dtype=bool)

    return excluded


def finish_build(build: Build, ex: Extracted, written: int, metrics: dict[str, Any]) -> None:
    """Record the build's counts, mark it ready and publish it."""
    build.counts = {
        "orders": ex.data.n_orders,
        "lines": ex.n_lines,
        "products": ex.data.n_items,
        "products_with_sales": int((ex.data.baskets.getnnz(axis=0) > 0).sum()),
        "customers": ex.data.n_customers,
        "recommendations": written,
    }
    build.metrics = {**build.metrics, **metrics}
    build.finished_at = timezone.now()
    build.state = Build.State.READY
    build.progress = {"stage": "publish", "percent": 100, "rows": written}
    build.save(update_fields=["counts", "metrics", "finished_at", "state", "progress"])
    publish(build)


def fail_build(build: Build, exc: BaseException) -> None:
    """Mark ``build`` failed with its error and drop its rows; the live build stays."""
    Build.objects.filter(pk=build.pk).update(
        state=Build.State.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
    )
    Recommendation.objects.filter(build_id=build.pk).delete()
    logger.error("crosssell build #%s failed: %s", build.pk, exc)


class _Reporter:
    """Forwards progress to a callback and, at most twice a second, to the Build row; keeps the
    rebuild lock alive meanwhile."""

    def __init__(
        self, build: Build, callback: ProgressFn | None, lock: CacheLock | None = None
    ) -> None:
        self.build = build
        self.callback = callback
        self.lock = lock
        self.last = 0.0

    def __call__(self, stage: str, fraction: float, rows: int) -> None:
        if self.callback:
            self.callback(stage, fraction, rows)
        now = time.monotonic()
        if now - self.last >= 0.5 or fraction >= 1.0:
            self.last = now
            progress = {"stage": stage, "percent": round(100 * fraction, 1), "rows": rows}
            Build.objects.filter(pk=self.build.pk).update(progress=progress)
            if self.lock is not None:
                self.lock.refresh()


def customer_counts(
    data: Interactions, src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """For each pair, the number of distinct customers who bought both items."""
    if len(src) == 0:
        return np.zeros(0, dtype=np.int64)
    U = data.customer_items()
    Ut = U.T.tocsr()
    # Only the rows that are asked for are multiplied: items x items restricted to sources.
    uniq, inv = np.unique(src, return_inverse=True)
    CU = (Ut[uniq] @ U).tocsr()
    return np.asarray(CU[inv, dst]).ravel().astype(np.int64)


def compute_rows(
    data: Interactions,
    model: ItemRecommender,
    k: int,
    min_customers: int,
    items: npt.NDArray[np.int64] | None = None,
    excluded: Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.bool_]]
    | None = None,
) -> Rows:
    """Top ``k`` per item, privacy-filtered, filled with popularity so every list is full.

    A pair that between 1 and ``min_customers - 1`` distinct customers bought together is never
    published, whichever strategy proposed it: showing it would reveal those customers' baskets.
    ``excluded(src, dst)`` marks further pairs to drop (the merchant's exclusions).
    """
    if items is None:
        items = np.arange(data.n_items, dtype=np.int64)
    wide = model.similar_items(items, k + 8)
    names = wide.source_names or [getattr(model, "name", "strategy")]
    pop = Popularity().fit(data)
    pop_head = pop.order_[: 4 * k + 8]
    src_l: list[int] = []
    dst_l: list[int] = []
    rank_l: list[int] = []
    score_l: list[float] = []
    strat_l: list[str] = []
    for pos_q, i in enumerate(items.tolist()):
        row = wide.indices[pos_q]
        cand = [
            (
                int(j),
                float(s),
                names[int(wide.sources[pos_q, p])] if wide.sources is not None else names[0],
            )
            for p, (j, s) in enumerate(zip(row, wide.scores[pos_q], strict=True))
            if j >= 0 and j != i
        ]
        fill = [(int(j), 0.0, "popularity") for j in pop_head if j != i]
        chosen: list[tuple[int, float, str]] = []
        seen: set[int] = {i}
        for j, s, name in cand + fill:
            if j in seen:
                continue
            seen.add(j)
            chosen.append((j, s, name))
            if len(chosen) == k + 8:  # headroom for pairs the privacy filter drops
                break
        for pos, (j, s, name) in enumerate(chosen):
            src_l.append(i)
            dst_l.append(j)
            rank_l.append(pos)
            score_l.append(s)
            strat_l.append(name)
    src = np.asarray(src_l, dtype=np.int64)
    dst = np.asarray(dst_l, dtype=np.int64)
    evidence = pair_evidence(data, src, dst)
    blocked = (evidence["customers"] >= 1) & (evidence["customers"] < min_customers)
    if excluded is not None:
        blocked |= excluded(src, dst)
    keep = ~blocked
    # Re-rank within each source after dropping blocked pairs, and cut to k.
    src, dst = src[keep], dst[keep]
    score = np.asarray(score_l, dtype=np.float32)[keep]
    strategy = [s for s, kept in zip(strat_l, keep, strict=True) if kept]
    evidence = {name: values[keep] for name, values in evidence.items()}
    rank = _rank_within(src)
    cut = rank < k
    return Rows(
        src[cut],
        dst[cut],
        rank[cut],
        score[cut],
        [s for s, c in zip(strategy, cut, strict=True) if c],
        {name: values[cut] for name, values in evidence.items()},
    )


def _rank_within(src: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """0, 1, 2... within each run of equal ``src`` (``src`` is grouped)."""
    if len(src) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(src)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(src)]))
    return np.arange(len(src), dtype=np.int64) - run_start


def pair_evidence(
    data: Interactions, src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]
) -> dict[str, npt.NDArray[Any]]:
    """Co-purchase count, confidence, lift and distinct customers of each pair."""
    try:
        from crosssell.engine.evidence import pair_evidence as engine_pair_evidence
    except ImportError:
        engine_pair_evidence = None
    if engine_pair_evidence is not None:
        return engine_pair_evidence(data, src, dst)
    C = cooccurrence(data.baskets)
    counts = C.diagonal().astype(np.float64)
    co = np.asarray(C[src, dst]).ravel().astype(np.float64) if len(src) else np.zeros(0)
    n = max(data.n_orders, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        confidence = np.where(counts[src] > 0, co / counts[src], 0.0)
        lift = np.where(counts[dst] > 0, confidence / (counts[dst] / n), 0.0)
    return {
        "co_count": co.astype(np.int64),
        "confidence": confidence,
        "lift": lift,
        "customers": customer_counts(data, src, dst),
    }


def write_rows(build: Build, ex: Extracted, rows: Rows, kind: str, report: ProgressFn) -> int:
    """Bulk-insert one kind's rows for ``build``; returns how many were written."""
    pids = ex.product_ids
    total = len(rows)
    ev_names = list(rows.evidence)
    written = 0
    for start in range(0, total, WRITE_BATCH):
        stop = min(start + WRITE_BATCH, total)
        objs = [
            Recommendation(
                build=build,
                kind=kind,
                source_id=int(pids[rows.src[i]]),
                target_id=int(pids[rows.dst[i]]),
                rank=int(rows.rank[i]),
                score=float(rows.score[i]),
                strategy=rows.strategy[i],
                evidence={name: _jsonable(rows.evidence[name][i]) for name in ev_names},
            )
            for i in range(start, stop)
        ]
        Recommendation.objects.bulk_create(objs)
        written += len(objs)
        report("write", written / max(total, 1), written)
    return written


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return round(float(value), 6)
    return value


@transaction.atomic
def publish(build: Build) -> Build:
    """Make ``build`` the live one in one transaction (also how a rollback is done)."""
    build = Build.objects.select_for_update().get(pk=build.pk)
    if build.state not in (Build.State.READY, Build.State.LIVE):
        raise ValueError(f"Build #{build.pk} is {build.state}; only a ready build can go live.")
    Build.objects.filter(state=Build.State.LIVE).exclude(pk=build.pk).update(
        state=Build.State.READY
    )
    apply_curation(build)
    build.state = Build.State.LIVE
    build.published_at = timezone.now()
    build.save(update_fields=["state", "published_at"])
    prune_builds()
    transaction.on_commit(cs_cache.bump)
    return build


def apply_curation(build: Build) -> None:
    """Copy the merchant's pinned and rejected decisions onto ``build``'s rows."""
    rows = Recommendation.objects.filter(build=build)
    for status in (Recommendation.Status.PINNED, Recommendation.Status.REJECTED):
        decided = Recommendation.objects.filter(
            build__isnull=True,
            status=status,
            kind=OuterRef("kind"),
            source=OuterRef("source"),
            target=OuterRef("target"),
        )
        rows.filter(Exists(decided)).update(status=status)


def prune_builds() -> int:
    """Delete builds beyond ``CROSSSELL_KEEP_BUILDS`` kept for rollback; returns how many."""
    keep = settings.KEEP_BUILDS
    old = list(
        Build.objects.filter(state__in=[Build.State.READY, Build.State.FAILED])
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[keep:]
    )
    if old:
        Build.objects.filter(pk__in=old).delete()
    return len(old)


def live_build() -> Build | None:
    """The live build, if any."""
    return Build.objects.filter(state=Build.State.LIVE).first()
