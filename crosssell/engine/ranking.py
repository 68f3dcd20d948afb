"""Ranking every item's list from a fitted strategy: privacy threshold, bestseller fill, evidence.

Pure numpy/scipy on item indices, shared by the single-process rebuild and a chord's shards
(the services write the rows and know the products behind the indices): :func:`compute_rows`
turns a fitted strategy into the published lists of one kind, :class:`EvidenceCounts` keeps the
exact co-counts behind the evidence across a build's kinds, and :func:`also_bought_model` is the
"customers who also bought" kind's model, fitted on the customers' histories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender, TopK
from crosssell.engine.evidence import pair_evidence as engine_evidence
from crosssell.engine.popularity import Popularity
from crosssell.engine.similarity import PairCounter, cooccurrence_counts, top_counts_per_row

#: ``excluded(src, dst)``: which item-index pairs must not be published (the merchant's
#: exclusions, as the services load them).
ExcludedFn = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.bool_]]


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


def also_bought_model(
    data: Interactions, item_ids: npt.NDArray[np.int64], counts: EvidenceCounts | None = None
) -> tuple[Interactions, ItemRecommender]:
    """ "Customers who bought this also bought": co-occurrence over customers' whole histories
    (each customer one row), fitted; the privacy threshold then counts the same customers.

    ``counts``, the bought-together kind's :class:`EvidenceCounts` of ``data``, already holds
    (or will compute once) those customers' co-counts for its own privacy threshold; ranked by
    them they are ``CoCount()`` fitted on the histories, so they are not counted again, and
    :meth:`EvidenceCounts.over_customers` gives this kind's evidence from them.

    Parameters
    ----------
    data
        The orders' interactions.
    item_ids
        The products behind the item indices (recorded as the new data's ``item_ids``).
    counts
        The co-counts of ``data`` kept for the build, if any.

    Returns
    -------
    tuple
        The customers x items interactions and the fitted model ranking on them.

    Raises
    ------
    ValueError
        ``counts`` are another data set's.
    """
    from crosssell.engine.cooccurrence import CoCount

    if counts is not None and counts.data is not data:
        raise ValueError("counts belong to another data set")
    customers = data.customer_items() if counts is None else counts.customer_items()
    also = Interactions(
        customers, np.arange(customers.shape[0], dtype=np.int64), customers.shape[0],
        data.content, {"item_ids": item_ids},
    )  # fmt: skip
    if counts is None:
        return also, CoCount().fit(also)
    return also, CountedCoCount.from_counts(counts.customers.matrix())


def compute_rows(
    data: Interactions,
    model: ItemRecommender,
    k: int,
    min_customers: int,
    items: npt.NDArray[np.int64] | None = None,
    excluded: ExcludedFn | None = None,
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
    if counts is None:
        return engine_evidence(data, src, dst)
    return engine_evidence(data, src, dst, orders=counts.orders, customers=counts.customers)


__all__ = [
    "CountedCoCount",
    "EvidenceCounts",
    "ExcludedFn",
    "Rows",
    "also_bought_model",
    "compute_rows",
    "pair_evidence",
]
