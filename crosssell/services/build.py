"""The full rebuild: extract, fit, blend, filter for privacy, write a Build, make it live.

The same pipeline computes an experiment variant's build (``publish=False``): it stays ready,
served only to that variant's visitors (:mod:`crosssell.services.variants`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from django.db import connections, router, transaction
from django.db.models import Exists, Field, OuterRef
from django.utils import timezone
from django.utils.module_loading import import_string

from crosssell.conf import settings
from crosssell.engine.base import Interactions, ItemRecommender, TopK
from crosssell.engine.evaluation.holdout import holdout_metrics
from crosssell.engine.evidence import MIN_CUSTOMERS_KEY
from crosssell.engine.popularity import Popularity
from crosssell.engine.similarity import (
    PairCounter,
    cooccurrence_counts,
    pair_counts,
    top_counts_per_row,
)
from crosssell.models import Build, Recommendation, Variant
from crosssell.services import cache as cs_cache
from crosssell.services import exclusions, incremental
from crosssell.services.build_history import VARIANT_ONLY
from crosssell.services.extract import Extracted, extract
from crosssell.services.locks import CacheLock, rebuild_lock

logger = logging.getLogger(__name__)
ProgressFn = Callable[[str, float, int], None]
WRITE_BATCH = 5_000
#: ``Build.trigger`` of a variant's build (never made live by the pipeline itself).


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
    publish: bool = True,
    parameters: Mapping[str, Any] | None = None,
    lock: CacheLock | None = None,
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
    publish
        ``False`` leaves the finished build ready instead of live (an experiment variant's
        build); the live build and the cache are then untouched.
    parameters
        Recorded in the build's ``parameters`` besides the strategy and thresholds.
    lock
        The rebuild lock, when the caller already holds it (:func:`rebuild_lock`) to run
        several builds in a row; by default it is taken and released here. Either way its
        heartbeat extends it until the build ends, the fit included.

    Returns
    -------
    Build
        The new live (or, with ``publish=False``, ready) build. On any failure the build is
        marked failed with its error, the previous build stays live, and the exception
        propagates.
    """
    if lock is None:
        with rebuild_lock(wait) as held:
            return rebuild(
                trigger=trigger, strategy=strategy, progress=progress, task_id=task_id,
                publish=publish, parameters=parameters, lock=held,
            )  # fmt: skip
    with lock.keep_alive():  # already beating when taken by ``rebuild_lock``
        model = resolve_strategy(strategy)
        build = start_build(trigger, task_id, model, parameters)
        return run_build(build, model, _Reporter(build, progress), publish=publish)


def resolve_strategy(strategy: ItemRecommender | str | None) -> ItemRecommender:
    """A strategy instance from an instance, a registry name or dotted path, or the default."""
    if strategy is None:
        return default_strategy()
    if isinstance(strategy, str) and "." in strategy:
        cls = import_string(strategy)
        return cls()
    if isinstance(strategy, str):
        from crosssell.engine import registry

        built: ItemRecommender = registry.build_strategy(strategy)
        return built
    return strategy


def start_build(
    trigger: str,
    task_id: str,
    model: ItemRecommender,
    parameters: Mapping[str, Any] | None = None,
) -> Build:
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
            **(parameters or {}),
        },
    )


def run_build(
    build: Build, model: ItemRecommender, report: _Reporter, *, publish: bool = True
) -> Build:
    """Extract, fit, rank, write and publish ``build`` (or only leave it ready with
    ``publish=False``); marks it failed on any error."""
    started = time.perf_counter()
    try:
        report("extract", 0.0, 0)
        # The orders of these pending updates are committed, so the extraction counts them:
        # once this build is live they need no incremental update.
        covered = incremental.pending_snapshot() if publish else []
        ex = extract(progress=report)
        ex.data.extra.setdefault("item_ids", ex.product_ids)
        # a strategy that reads it scores the pairs below the threshold as never bought together
        ex.data.extra[MIN_CUSTOMERS_KEY] = settings.MIN_CUSTOMERS
        report("fit", 0.0, ex.n_lines)
        metrics: dict[str, Any] = {}
        if settings.OFFLINE_METRICS:
            # A fresh copy, fitted on 90% of the orders, asked about the other 10%.
            unfitted = copy.deepcopy(model)
            metrics = holdout_metrics(ex.data, lambda: copy.deepcopy(unfitted))
        fit_started = time.perf_counter()
        model.fit(ex.data)
        fit_seconds = time.perf_counter() - fit_started
        report("rank", 0.0, ex.n_lines)
        excluded = exclusion_filter(ex)
        counts = EvidenceCounts(ex.data)  # co-counts computed once for both kinds
        rows = compute_rows(
            ex.data, model, settings.LIST_LENGTH, settings.MIN_CUSTOMERS, excluded=excluded,
            counts=counts,
        )  # fmt: skip
        report("write", 0.0, len(rows))
        written = write_rows(build, ex, rows, Recommendation.Kind.BOUGHT_TOGETHER, report)
        if Recommendation.Kind.ALSO_BOUGHT in settings.KINDS:
            data, also = also_bought_model(ex, counts)
            report("rank", 0.0, ex.n_lines)
            rows = compute_rows(
                data, also, settings.LIST_LENGTH, settings.MIN_CUSTOMERS, excluded=excluded,
                counts=counts.over_customers(data),
            )  # fmt: skip
            written += write_rows(build, ex, rows, Recommendation.Kind.ALSO_BOUGHT, report)
        metrics["fit_seconds"] = round(fit_seconds, 3)
        finish_build(build, ex, written, metrics, make_live=publish)
    except BaseException as exc:
        fail_build(build, exc)
        raise
    incremental.clear_pending(covered)
    logger.info(
        "crosssell build #%s %s in %.1fs",
        build.pk,
        "live" if publish else "ready",
        time.perf_counter() - started,
    )
    build.refresh_from_db()
    return build


def also_bought_model(
    ex: Extracted, counts: EvidenceCounts | None = None
) -> tuple[Interactions, ItemRecommender]:
    """ "Customers who bought this also bought": co-occurrence over customers' whole histories
    (each customer one row), fitted; the privacy threshold then counts the same customers.

    ``counts``, the bought-together kind's :class:`EvidenceCounts` of ``ex.data``, already
    holds (or will compute once) those customers' co-counts for its own privacy threshold;
    ranked by them they are ``CoCount()`` fitted on the histories, so they are not counted
    again, and :meth:`EvidenceCounts.over_customers` gives this kind's evidence from them.
    """
    from crosssell.engine.cooccurrence import CoCount

    if counts is not None and counts.data is not ex.data:
        raise ValueError("counts belong to another data set")
    customers = ex.data.customer_items() if counts is None else counts.customer_items()
    data = Interactions(
        customers, np.arange(customers.shape[0], dtype=np.int64), customers.shape[0],
        ex.data.content, {"item_ids": ex.product_ids},
    )  # fmt: skip
    if counts is None:
        return data, CoCount().fit(data)
    return data, CountedCoCount.from_counts(counts.customers.matrix())


class CountedCoCount(ItemRecommender):
    """``CoCount()`` (default parameters) on exact integer co-counts, which may be handed over.

    ``CoCount()`` ranks an item's companions by how many rows hold both, ties by the smaller
    index, which is what :func:`~crosssell.engine.base.topk_rows` does on the counts themselves
    (it skips the item itself, so the diagonal may stay; ``top_counts_per_row`` does the same,
    faster, on integers): the same lists, and from :meth:`from_counts` without a second
    ``items x items`` product when the counts exist.
    """

    name = "cocount"

    def fit(self, data: Interactions) -> CountedCoCount:
        self.cooc_ = cooccurrence_counts(data.baskets)
        return self

    @classmethod
    def from_counts(cls, counts: sp.csr_matrix) -> CountedCoCount:
        """Fitted on ``counts`` (``M.T @ M`` of binary rows, as from ``cooccurrence_counts``)."""
        model = cls()
        model.cooc_ = counts
        return model

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return top_counts_per_row(self.cooc_, np.asarray(items, dtype=np.int64), k)


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


def finish_build(
    build: Build, ex: Extracted, written: int, metrics: dict[str, Any], *, make_live: bool = True
) -> None:
    """Record the build's counts, mark it ready and publish it (``make_live=False``: only copy
    the merchant's decisions onto it, as publishing would, and leave it ready)."""
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
    stage = "publish" if make_live else "ready"
    build.progress = {"stage": stage, "percent": 100, "rows": written}
    if not make_live:
        with transaction.atomic():
            build.save(update_fields=["counts", "metrics", "finished_at", "state", "progress"])
            apply_curation(build)
        return
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
    """Forwards progress to a callback and, at most twice a second, to the Build row."""

    def __init__(self, build: Build, callback: ProgressFn | None) -> None:
        self.build = build
        self.callback = callback
        self.last = 0.0

    def __call__(self, stage: str, fraction: float, rows: int) -> None:
        if self.callback:
            self.callback(stage, fraction, rows)
        now = time.monotonic()
        if now - self.last >= 0.5 or fraction >= 1.0:
            self.last = now
            progress = {"stage": stage, "percent": round(100 * fraction, 1), "rows": rows}
            Build.objects.filter(pk=self.build.pk).update(progress=progress)


def customer_counts(
    data: Interactions, src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """For each pair, the number of distinct customers who bought both items.

    Computed in blocks of source items (:func:`crosssell.engine.similarity.pair_counts`), so
    the memory stays bounded however large the catalog.
    """
    src = np.asarray(src, dtype=np.int64)
    if len(src) == 0:
        return np.zeros(0, dtype=np.int64)
    return pair_counts(data.customer_items(), src, np.asarray(dst, dtype=np.int64))


class EvidenceCounts:
    """The exact co-counts behind one data set's evidence, kept across a build's kinds.

    Counting, for every candidate pair, the orders and the customers that hold both items is
    most of a rebuild's computing. Over the whole catalog each count is cheapest as one
    ``items x items`` product looked up pair by pair
    (:class:`~crosssell.engine.similarity.PairCounter`), and the customers' product serves
    twice: the bought-together kind's privacy threshold, then the also-bought kind, whose rows
    are the customers, so its model (:func:`also_bought_model`) and both its counts are that
    same product (:meth:`over_customers`).

    Parameters
    ----------
    data
        The interactions the counts are of.
    orders, customers
        Counters over ``data.baskets`` and ``data.customer_items()`` (default: new ones).
    """

    def __init__(
        self,
        data: Interactions,
        orders: PairCounter | None = None,
        customers: PairCounter | None = None,
    ) -> None:
        self.data = data
        self._orders = orders
        self._customers = customers
        self._customer_items: sp.csr_matrix | None = None

    def customer_items(self) -> sp.csr_matrix:
        """``data.customer_items()``, computed once."""
        if self._customer_items is None:
            self._customer_items = self.data.customer_items()
        return self._customer_items

    @property
    def orders(self) -> PairCounter:
        """Orders holding both items of a pair."""
        if self._orders is None:
            self._orders = PairCounter(self.data.baskets)
        return self._orders

    @property
    def customers(self) -> PairCounter:
        """Distinct customers who bought both items of a pair (over their whole history)."""
        if self._customers is None:
            self._customers = PairCounter(self.customer_items())
        return self._customers

    def over_customers(self, data: Interactions) -> EvidenceCounts:
        """The counts of ``data``, the also-bought kind's customers x items rows built on
        :meth:`customer_items`: each row a customer, so orders and customers count alike."""
        if data.baskets is not self.customer_items():
            raise ValueError("data is not built on these counts' customer_items()")
        return EvidenceCounts(data, orders=self.customers, customers=self.customers)


def compute_rows(
    data: Interactions,
    model: ItemRecommender,
    k: int,
    min_customers: int,
    items: npt.NDArray[np.int64] | None = None,
    excluded: Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.bool_]]
    | None = None,
    counts: EvidenceCounts | None = None,
) -> Rows:
    """Top ``k`` per item, privacy-filtered, filled with popularity so every list is full.

    Each item's candidates are the strategy's ``k + 8`` best (never the item itself), less the
    pairs that between 1 and ``min_customers - 1`` distinct customers bought together (showing
    them would reveal those customers' baskets), then the bestsellers, without duplicates, cut
    to ``k + 8``: the headroom is for the pairs dropped next. ``excluded(src, dst)`` marks
    pairs to drop (the merchant's exclusions). What is left is ranked again and cut to ``k``.

    The bestsellers are chosen from sales alone, as if the strategy had never proposed the
    pairs below the threshold: one order of such a pair neither removes a bestseller nor moves
    one. A bestseller's pair below the threshold is published with the evidence of a pair never
    bought together (all zeros), so no count below the threshold is ever written.

    Parameters
    ----------
    data
        The extracted interactions.
    model
        A fitted strategy.
    k
        List length.
    min_customers
        The privacy threshold.
    items
        Item indices to rank (default: all).
    excluded
        Optional ``excluded(src, dst) -> bool array``.
    counts
        The co-counts of ``data`` kept for several calls (:class:`EvidenceCounts`); by default
        the evidence counts only this call's pairs.

    Returns
    -------
    Rows
        Grouped by source in the order of ``items``, ranks ``0..`` within each source.

    Raises
    ------
    IndexError
        The strategy proposed an item index that does not exist.
    ValueError
        ``counts`` are another data set's.
    """
    if counts is not None and counts.data is not data:
        raise ValueError("counts belong to another data set")
    if items is None:
        items = np.arange(data.n_items, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    width = k + 8  # headroom for pairs the privacy filter drops
    wide = model.similar_items(items, width)
    names = list(wide.source_names or [getattr(model, "name", "strategy")])
    cand = np.asarray(wide.indices, dtype=np.int64)
    if cand.size and cand.max() >= data.n_items:
        raise IndexError(f"strategy proposed item {int(cand.max())} of {data.n_items}")
    if wide.sources is not None:
        cand_src = np.asarray(wide.sources, dtype=np.int64).reshape(cand.shape)
    else:
        cand_src = np.zeros(cand.shape, dtype=np.int64)
    # The bestsellers fill what the strategy left: 2 * width + 1 of them always suffice (at
    # most width + 1 are the strategy's own or the item itself).
    pop = Popularity().fit(data)
    head = pop.order_[: min(4 * k + 8, 2 * width + 1)].astype(np.int64)
    n, fill = len(items), len(head)
    names.append("popularity")
    every = np.hstack([cand, np.broadcast_to(head, (n, fill))])
    scores = np.hstack(
        [np.asarray(wide.scores, dtype=np.float32), np.zeros((n, fill), dtype=np.float32)]
    )
    sources = np.hstack([cand_src, np.full((n, fill), len(names) - 1, dtype=np.int64)])
    # The strategy's proposals below the threshold become padding before the bestsellers fill
    # in, unless its fit already scored them as never bought together (``private_below_``):
    # then they stand where they are. Their evidence is counted once, reused for the rows kept.
    first = _first_candidates(cand, items)
    c_row, c_col = np.nonzero(first)
    c_evidence = pair_evidence(data, items[c_row], cand[c_row, c_col], counts)
    if getattr(model, "private_below_", 0) < min_customers:
        private = _below(c_evidence["customers"], min_customers)
        first[c_row[private], c_col[private]] = False
    c_at = np.full(cand.shape, -1, dtype=np.int64)
    c_at[c_row, c_col] = np.arange(len(c_row), dtype=np.int64)
    cand = np.where(first, cand, -1)
    take = np.hstack([first, _bestsellers_left(cand, items, head)])
    # at most ``width`` per item: a running count over the flattened rows, less earlier rows'
    taken = np.cumsum(take, axis=None).reshape(take.shape)
    earlier = np.r_[0, taken[:-1, -1]] if take.shape[1] else np.zeros(n, dtype=np.int64)
    take &= taken - earlier[:, None] <= width
    row, col = np.nonzero(take)
    src, dst = items[row], every[row, col]
    score, source = scores[row, col], sources[row, col]
    del every, scores, sources, take, taken

    proposed = col < cand.shape[1]
    f_evidence = pair_evidence(data, src[~proposed], dst[~proposed], counts)
    at = c_at[row[proposed], col[proposed]]
    evidence: dict[str, npt.NDArray[Any]] = {}
    for name, values in c_evidence.items():
        merged = np.empty(len(src), dtype=np.result_type(values, f_evidence[name]))
        merged[proposed] = values[at]
        merged[~proposed] = f_evidence[name]
        evidence[name] = merged
    # A bestseller stays; what its pair's few customers did is not shown.
    scrub = _below(evidence["customers"], min_customers)
    for values in evidence.values():
        values[scrub] = 0
    blocked = np.zeros(len(src), dtype=bool)
    if excluded is not None:
        blocked |= np.asarray(excluded(src, dst), dtype=bool)
    keep = np.flatnonzero(~blocked)
    # Re-rank within each source after dropping blocked pairs, and cut to k.
    rank = _rank_within(src[keep])
    keep = keep[rank < k]
    label = np.asarray(names, dtype=object)
    return Rows(
        src[keep],
        dst[keep],
        rank[rank < k],
        score[keep],
        label[source[keep]].tolist(),
        {name: values[keep] for name, values in evidence.items()},
    )


def _below(customers: npt.NDArray[Any], min_customers: int) -> npt.NDArray[np.bool_]:
    """The pairs bought together by 1 to ``min_customers - 1`` distinct customers."""
    return np.asarray((customers >= 1) & (customers < min_customers), dtype=bool)


def _first_candidates(
    cand: npt.NDArray[np.int64], items: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """The strategy's candidates that count: a real item (not padding), not the item itself,
    and the first of equal ones in the row (a stable sort puts it first among them)."""
    take = (cand >= 0) & (cand != items[:, None])
    if cand.shape[1] > 1:
        by_value = np.argsort(cand, axis=1, kind="stable")
        ordered = np.take_along_axis(cand, by_value, axis=1)
        first = np.ones(cand.shape, dtype=bool)
        np.put_along_axis(first, by_value[:, 1:], ordered[:, 1:] != ordered[:, :-1], axis=1)
        take &= first
    return take


def _bestsellers_left(
    cand: npt.NDArray[np.int64], items: npt.NDArray[np.int64], head: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Per row, which of the bestsellers ``head`` (distinct) may fill in after the strategy's
    candidates: those that are neither the item itself nor among its candidates. Found by
    marking each candidate's place in ``head`` rather than sorting candidates and bestsellers
    together (the same answer, several times faster)."""
    n_items = int(max(cand.max(initial=-1), items.max(initial=-1), head.max(initial=-1))) + 1
    place = np.full(n_items, -1, dtype=np.int64)
    place[head] = np.arange(len(head), dtype=np.int64)
    left = np.ones((len(items), len(head)), dtype=bool)
    row, col = np.nonzero(cand >= 0)
    at = place[cand[row, col]]
    hit = at >= 0
    left[row[hit], at[hit]] = False
    at = place[items]
    hit = at >= 0
    left[np.flatnonzero(hit), at[hit]] = False
    return left


def _rank_within(src: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """0, 1, 2... within each run of equal ``src`` (``src`` is grouped)."""
    if len(src) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(src)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(src)]))
    return np.arange(len(src), dtype=np.int64) - run_start


def pair_evidence(
    data: Interactions,
    src: npt.NDArray[np.int64],
    dst: npt.NDArray[np.int64],
    counts: EvidenceCounts | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Co-purchase count, support, confidence, lift and distinct customers of each pair
    (:func:`crosssell.engine.evidence.pair_evidence`), from ``counts`` when given (the same
    exact numbers, counted once for the whole build)."""
    from crosssell.engine.evidence import pair_evidence as engine_evidence

    if counts is None:
        return engine_evidence(data, src, dst)
    return engine_evidence(data, src, dst, orders=counts.orders, customers=counts.customers)


def write_rows(build: Build, ex: Extracted, rows: Rows, kind: str, report: ProgressFn) -> int:
    """Bulk-insert one kind's rows for ``build``; returns how many were written.

    PostgreSQL gets them by ``COPY`` (formatted in blocks while the server ingests the previous
    one), any other database by ``bulk_create``.
    """
    db = router.db_for_write(Recommendation)
    if connections[db].vendor == "postgresql":
        return _copy_rows(db, build, ex, rows, kind, report)
    return _bulk_create_rows(db, build, ex, rows, kind, report)


def _bulk_create_rows(
    db: str, build: Build, ex: Extracted, rows: Rows, kind: str, report: ProgressFn
) -> int:
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
        Recommendation.objects.using(db).bulk_create(objs)
        written += len(objs)
        report("write", written / max(total, 1), written)
    return written


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return round(float(value), 6)
    return value


#: Rows formatted and sent in one ``COPY`` statement.
COPY_BATCH = 100_000


def _copy_rows(
    db: str, build: Build, ex: Extracted, rows: Rows, kind: str, report: ProgressFn
) -> int:
    """``write_rows`` on PostgreSQL: text ``COPY``, one ``%`` format per row.

    The values are exactly those ``bulk_create`` would store: the score as a double, the
    evidence's floats rounded to 6 digits, every column with a default given explicitly.
    """
    from psycopg.copy import QueuedLibpqWriter

    meta = Recommendation._meta
    qn = connections[db].ops.quote_name
    names = ["build", "source", "target", "kind", "score", "rank", "strategy", "evidence"]
    names += ["status", "created_at", "updated_at"]
    columns = ", ".join(qn(cast("Field[Any, Any]", meta.get_field(f)).column) for f in names)
    sql = f"COPY {qn(meta.db_table)} ({columns}) FROM STDIN"
    now = _copy_text(str(timezone.now()))
    evidence_fmt, evidence_cols = _evidence_format(rows.evidence)
    template = "\t".join(
        [
            str(build.pk),
            "%d",
            "%d",
            _copy_text(kind).replace("%", "%%"),
            "%r",
            "%d",
            "%s",
            evidence_fmt,
            _copy_text(Recommendation.Status.AUTO).replace("%", "%%"),
            now,
            now,
        ]
    )
    template += "\n"
    pids = ex.product_ids
    total = len(rows)
    strategy = rows.strategy
    if any(_copy_text(s) != s for s in set(strategy)):
        strategy = [_copy_text(s) for s in strategy]

    def block(start: int) -> str:
        part = slice(start, min(start + COPY_BATCH, total))
        values = zip(
            pids[rows.src[part]].tolist(),
            pids[rows.dst[part]].tolist(),
            rows.score[part].astype(np.float64).tolist(),
            rows.rank[part].tolist(),
            strategy[part],
            *(column(part) for column in evidence_cols),
            strict=True,
        )
        return "".join(map(template.__mod__, values))

    starts = list(range(0, total, COPY_BATCH))
    written = 0
    with connections[db].cursor() as cursor:
        raw = cursor.cursor
        text = block(0) if starts else ""
        for pos, start in enumerate(starts):
            # One COPY per block: between two, ``report`` may use this connection (the build's
            # progress), which it must not while a COPY is open.
            with raw.copy(sql, writer=QueuedLibpqWriter(raw)) as copy:
                copy.write(text)
                # formatted while the server ingests the block just sent
                text = block(starts[pos + 1]) if pos + 1 < len(starts) else ""
            written = min(start + COPY_BATCH, total)
            report("write", written / max(total, 1), written)
    return written


def _evidence_format(
    evidence: dict[str, npt.NDArray[Any]],
) -> tuple[str, list[Callable[[slice], list[Any]]]]:
    """A ``%`` template of the evidence's JSON and, per placeholder, its values for a slice."""
    import json

    parts: list[str] = []
    cols: list[Callable[[slice], list[Any]]] = []
    for name, values in evidence.items():
        key = _copy_text(json.dumps(name)).replace("%", "%%")
        arr = np.asarray(values)
        if arr.dtype.kind in "iu":
            parts.append(f"{key}: %d")
        elif arr.dtype.kind == "f":
            parts.append(f"{key}: %r")
        else:
            parts.append(f"{key}: %s")
        cols.append(_evidence_column(arr))
    return "{" + ", ".join(parts) + "}", cols


def _evidence_column(arr: npt.NDArray[Any]) -> Callable[[slice], list[Any]]:
    """The values of one evidence column for a slice, as ``_jsonable`` would store them."""
    import json

    def ints(part: slice) -> list[Any]:
        return list(arr[part].tolist())

    def floats(part: slice) -> list[Any]:
        return [round(v, 6) for v in arr[part].tolist()]

    def other(part: slice) -> list[Any]:
        return [_copy_text(json.dumps(_jsonable(v))) for v in arr[part]]

    if arr.dtype.kind in "iu":
        return ints
    return floats if arr.dtype.kind == "f" else other


def _copy_text(value: str) -> str:
    """``value`` escaped for a text-format ``COPY`` field."""
    if not any(c in value for c in "\\\t\n\r"):
        return value
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


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
    """Delete the builds nobody needs any more; returns how many.

    Kept: the live and running builds, every build a variant serves (``Variant.build``), and
    the ``CROSSSELL_KEEP_BUILDS`` newest others, for rollback. A variant's build that never
    went live is no rollback candidate and takes none of those places: once no variant serves
    it, it goes when its variant has a newer build or no longer exists. A variant's newest
    build is spared even when unserved, since it may be the one being attached to its variant
    at this moment (``publish`` from the admin runs without the rebuild lock).
    """
    keep = settings.KEEP_BUILDS
    served = Exists(Variant.objects.filter(build=OuterRef("pk")))
    done = Build.objects.filter(state__in=[Build.State.READY, Build.State.FAILED]).filter(~served)
    history = done.exclude(VARIANT_ONLY).order_by("-created_at", "-id")
    old = list(history.values_list("pk", flat=True)[keep:])
    old += _superseded_variant_builds(list(done.filter(VARIANT_ONLY).values_list("pk", flat=True)))
    if old:
        Build.objects.filter(pk__in=old).delete()
    return len(old)


def _superseded_variant_builds(candidates: list[int]) -> list[int]:
    """Of ``candidates`` (unserved variant builds), those whose variant has a newer build or is
    gone. There are a few variant builds at most, so this is done in Python."""
    if not candidates:
        return []
    newest: dict[Any, int] = {}
    for pk, params in (
        Build.objects.filter(trigger=Build.VARIANT_TRIGGER)
        .order_by("created_at", "id")
        .values_list("pk", "parameters")
    ):
        newest[(params or {}).get("variant")] = pk
    owner = {
        pk: (params or {}).get("variant")
        for pk, params in Build.objects.filter(pk__in=candidates).values_list("pk", "parameters")
    }
    ids = [v for v in owner.values() if isinstance(v, int)]
    alive = set(Variant.objects.filter(pk__in=ids).values_list("pk", flat=True))
    return [pk for pk, v in owner.items() if v not in alive or newest.get(v) != pk]
