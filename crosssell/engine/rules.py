"""Association rules: frequent itemsets (support), rules with confidence and lift, pair evidence.

Frequent itemsets are mined level by level as apriori does, but counted with sparse products:
the transaction lists of all frequent ``(n-1)``-itemsets of a level, stacked as rows of a matrix,
times the ``orders x items`` matrix give the support of every one-item extension at once. Rules
have one item on the right and one or more on the left (as arules' ``apriori``), so a cart of
several products is completed by the rules whose whole left side it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import (
    FloatArray,
    IntArray,
    Interactions,
    ItemRecommender,
    TopK,
    empty_topk,
)
from crosssell.engine.evidence import pair_evidence
from crosssell.engine.similarity import column_counts

__all__ = [
    "AssociationRules",
    "FrequentItemsets",
    "Rules",
    "association_rules",
    "frequent_itemsets",
    "pair_evidence",
]


@dataclass(frozen=True)
class FrequentItemsets:
    """Itemsets (sorted item indices) with the number of orders holding each."""

    itemsets: list[tuple[int, ...]]
    counts: IntArray
    n_orders: int

    @property
    def support(self) -> npt.NDArray[np.float64]:
        return self.counts / max(self.n_orders, 1)


def frequent_itemsets(
    baskets: sp.csr_matrix, min_support: float, max_len: int = 10, min_count: int = 1
) -> FrequentItemsets:
    """All itemsets held by at least ``max(min_support * n_orders, min_count)`` orders.

    Parameters
    ----------
    baskets
        Binary ``n_orders x n_items`` CSR matrix.
    min_support
        Minimum fraction of orders (arules' ``supp``).
    max_len
        Largest itemset size (arules' ``maxlen``, 10 by default).
    min_count
        Minimum number of orders, whatever the fraction.
    """
    X = sp.csr_matrix(baskets, dtype=np.float64)
    X.data[:] = 1.0
    n_orders = X.shape[0]
    # arules keeps an itemset when support >= supp, i.e. count >= supp * n (as a float)
    threshold = max(min_support * n_orders, float(min_count))
    counts1 = column_counts(X)
    level_items = np.flatnonzero(counts1 >= threshold - 1e-9 * max(threshold, 1.0))
    itemsets: list[tuple[int, ...]] = [(int(i),) for i in level_items]
    counts: list[int] = [int(counts1[i]) for i in level_items]
    # rows: transaction lists of the current level's itemsets
    XT = X.T.tocsr()
    T = XT[level_items]
    last = level_items.copy()
    prefixes: list[tuple[int, ...]] = [(int(i),) for i in level_items]
    size = 1
    while size < max_len and T.shape[0] > 0:
        ext = (T @ X).tocoo()
        ok = (ext.data >= threshold - 1e-9 * max(threshold, 1.0)) & (ext.col > last[ext.row])
        r, c, v = ext.row[ok], ext.col[ok], ext.data[ok]
        if len(r) == 0:
            break
        order = np.lexsort((c, r))
        r, c, v = r[order], c[order], v[order]
        new_sets = [(*prefixes[a], int(b)) for a, b in zip(r.tolist(), c.tolist(), strict=True)]
        itemsets.extend(new_sets)
        counts.extend(round(x) for x in v.tolist())
        T = T[r].multiply(XT[c]).tocsr()
        T.eliminate_zeros()
        last = c.astype(np.int64)
        prefixes = new_sets
        size += 1
    return FrequentItemsets(itemsets, np.asarray(counts, dtype=np.int64), n_orders)


@dataclass(frozen=True)
class Rules:
    """Rules ``lhs -> rhs`` (one item on the right), as parallel arrays.

    ``lhs`` is a sparse ``n_rules x n_items`` binary matrix; ``lhs_size`` its row sums.
    """

    lhs: sp.csr_matrix
    rhs: IntArray
    count: IntArray
    support: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float64]
    coverage: npt.NDArray[np.float64]
    lift: npt.NDArray[np.float64]

    @property
    def lhs_size(self) -> IntArray:
        return np.diff(self.lhs.indptr).astype(np.int64)

    def __len__(self) -> int:
        return len(self.rhs)

    def lhs_items(self, r: int) -> list[int]:
        """The left-hand items of rule ``r``."""
        return [int(x) for x in self.lhs.indices[self.lhs.indptr[r] : self.lhs.indptr[r + 1]]]


def association_rules(
    sets: FrequentItemsets,
    n_items: int,
    min_confidence: float,
    min_lift: float = 0.0,
) -> Rules:
    """Rules with one item on the right from frequent itemsets (arules' ``apriori`` rules).

    ``support`` is the support of the whole itemset, ``confidence = supp(lhs + rhs)/supp(lhs)``,
    ``coverage = supp(lhs)``, ``lift = confidence / supp(rhs)``.
    """
    index = {s: i for i, s in enumerate(sets.itemsets)}
    n = max(sets.n_orders, 1)
    lhs_rows: list[list[int]] = []
    rhs: list[int] = []
    count: list[int] = []
    cover: list[int] = []
    item_count = np.zeros(n_items, dtype=np.int64)
    for s, c in zip(sets.itemsets, sets.counts.tolist(), strict=True):
        if len(s) == 1:
            item_count[s[0]] = c
    for s, c in zip(sets.itemsets, sets.counts.tolist(), strict=True):
        if len(s) < 2:
            continue
        for pos, y in enumerate(s):
            left = s[:pos] + s[pos + 1 :]
            lc = int(sets.counts[index[left]])
            if c >= min_confidence * lc - 1e-12 * lc:
                lhs_rows.append(list(left))
                rhs.append(y)
                count.append(c)
                cover.append(lc)
    indptr = np.r_[0, np.cumsum([len(r) for r in lhs_rows])].astype(np.int64)
    indices = np.asarray([i for r in lhs_rows for i in r], dtype=np.int64)
    L = sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(rhs), n_items)
    )
    cnt = np.asarray(count, dtype=np.int64)
    cov = np.asarray(cover, dtype=np.float64)
    rhs_a = np.asarray(rhs, dtype=np.int64)
    support = cnt / n
    confidence = cnt / np.maximum(cov, 1.0)
    lift = confidence / np.maximum(item_count[rhs_a] / n, 1e-300) if len(rhs_a) else np.zeros(0)
    keep = lift >= min_lift
    return Rules(
        L[keep],
        rhs_a[keep],
        cnt[keep],
        support[keep],
        confidence[keep],
        cov[keep] / n,
        np.asarray(lift, dtype=np.float64)[keep],
    )


class AssociationRules(ItemRecommender):
    """Rank additions by association rules (support, confidence and lift thresholds).

    Parameters
    ----------
    min_support
        Minimum fraction of orders holding the whole rule (itemset).
    min_confidence
        Minimum ``supp(lhs + rhs) / supp(lhs)``.
    min_lift
        Minimum lift (1.0 keeps only positively associated pairs).
    max_len
        Largest rule (items on both sides).
    min_count
        Minimum number of orders holding the rule, whatever ``min_support``.

    Notes
    -----
    ``similar_items`` uses the rules with one item on the left; ``recommend_basket`` every rule
    whose whole left side is in the basket, ranking each right-hand item by its best rule
    (confidence, then lift, then support).
    """

    name = "rules"

    def __init__(
        self,
        min_support: float = 0.0005,
        min_confidence: float = 0.05,
        min_lift: float = 1.0,
        max_len: int = 3,
        min_count: int = 2,
    ) -> None:
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.min_lift = min_lift
        self.max_len = max_len
        self.min_count = min_count

    def fit(self, data: Interactions) -> Self:
        if not 0.0 <= self.min_support <= 1.0 or not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("min_support and min_confidence must be within [0, 1]")
        if self.max_len < 2:
            raise ValueError("max_len must be at least 2 (a rule has two sides)")
        self.itemsets_ = frequent_itemsets(
            data.baskets, self.min_support, self.max_len, max(self.min_count, 1)
        )
        self.rules_ = association_rules(
            self.itemsets_, data.n_items, self.min_confidence, self.min_lift
        )
        self.n_items_ = data.n_items
        single = self.rules_.lhs_size == 1
        L = self.rules_.lhs[single].tocoo()
        rule_ids = np.flatnonzero(single)[L.row]
        # one-item rules as an items x items matrix of confidence (ties broken by lift below)
        self.pair_rules_ = sp.csr_matrix(
            (rule_ids.astype(np.float64) + 1.0, (L.col, self.rules_.rhs[rule_ids])),
            shape=(data.n_items, data.n_items),
        )
        return self

    def _rank(self, rule_ids: IntArray, exclude: set[int], k: int) -> tuple[IntArray, FloatArray]:
        R = self.rules_
        order = np.lexsort(
            (R.rhs[rule_ids], -R.support[rule_ids], -R.lift[rule_ids], -R.confidence[rule_ids])
        )
        items: list[int] = []
        scores: list[float] = []
        for r in rule_ids[order].tolist():
            y = int(R.rhs[r])
            if y in exclude:
                continue
            exclude.add(y)
            items.append(y)
            scores.append(float(R.confidence[r]))
            if len(items) == k:
                break
        return np.asarray(items, dtype=np.int64), np.asarray(scores, dtype=np.float32)

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        q = np.asarray(items, dtype=np.int64)
        out = empty_topk(len(q), k)
        P = self.pair_rules_
        for pos, i in enumerate(q.tolist()):
            ids = (P.data[P.indptr[i] : P.indptr[i + 1]] - 1).astype(np.int64)
            got, sc = self._rank(ids, {i}, k)
            out.indices[pos, : len(got)] = got
            out.scores[pos, : len(got)] = sc
        return out

    def recommend_basket(self, basket: npt.ArrayLike, k: int) -> TopK:
        items = np.unique(np.asarray(basket, dtype=np.int64))
        out = empty_topk(1, k)
        if len(self.rules_) == 0 or len(items) == 0:
            return out
        b = np.zeros(self.n_items_, dtype=np.float32)
        b[items] = 1.0
        held = self.rules_.lhs @ b
        fired = np.flatnonzero(held >= self.rules_.lhs_size - 0.5)
        got, sc = self._rank(fired.astype(np.int64), {int(i) for i in items}, k)
        out.indices[0, : len(got)] = got
        out.scores[0, : len(got)] = sc
        return out
