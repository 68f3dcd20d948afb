"""Co-purchase counts: how many orders hold both items (the best peer of FBT-v1).

The plain count ranks a rarely bought item's companions by ties of 1s; a small popularity prior
(``prior``) breaks them toward what sells, which is what a Bayesian estimate of
``P(companion | item)`` with a popularity prior does, and measurably helps (BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender, TopK, topk_rows
from crosssell.engine.similarity import column_counts


def cooccurrence(baskets: sp.csr_matrix) -> sp.csr_matrix:
    """``n_items x n_items`` co-purchase counts (the diagonal holds each item's own count)."""
    X = baskets.astype(np.float32)
    return (X.T @ X).tocsr()


class CoCount(ItemRecommender):
    """Rank companions by co-purchase count, smoothed toward popularity.

    Parameters
    ----------
    min_count
        Co-purchase counts below this are ignored.
    prior
        Weight ``m`` of the popularity prior: the score of ``j`` for ``i`` is
        ``count(i, j) + m * P(j)`` (``P(j)``: share of orders holding ``j``), the numerator of the
        smoothed estimate ``(count(i, j) + m P(j)) / (count(i) + m)``. 0 gives the plain count.
    damping
        ``alpha`` in ``score / count(j) ** alpha``: a small positive value demotes items that
        are in every basket anyway (0: no damping).
    max_neighbours
        Companions kept per item after fitting (``None``: all).
    """

    name = "cocount"

    def __init__(
        self,
        min_count: int = 1,
        prior: float = 0.0,
        damping: float = 0.0,
        max_neighbours: int | None = None,
    ) -> None:
        self.min_count = min_count
        self.prior = prior
        self.damping = damping
        self.max_neighbours = max_neighbours

    def fit(self, data: Interactions) -> Self:
        C = cooccurrence(data.baskets).astype(np.float64)
        C.setdiag(0)
        return self._fit_counts(C, column_counts(data.baskets), data.n_orders)

    def fit_counts(
        self, counts: sp.csr_matrix, pop: npt.NDArray[np.float64], n_orders: int
    ) -> Self:
        """Fit from co-purchase counts already counted (what ``fit`` counts, then scores).

        Parameters
        ----------
        counts
            Item x item co-purchase counts with a zero diagonal, or some rows of them (the
            scores of a row depend on that row only): the tuner re-scores its validation
            products for several priors from one count (:mod:`crosssell.engine.tuning`).
        pop, n_orders
            Each item's order count and the number of orders.
        """
        return self._fit_counts(sp.csr_matrix(counts, dtype=np.float64, copy=True), pop, n_orders)

    def _fit_counts(self, C: sp.csr_matrix, pop: npt.NDArray[np.float64], n_orders: int) -> Self:
        """``fit_counts`` on float64 counts it may change in place."""
        if self.prior < 0:
            raise ValueError("prior must be >= 0")
        C.data[C.data < self.min_count] = 0
        C.eliminate_zeros()
        self.counts_: npt.NDArray[np.float64] = pop
        if self.prior or self.damping:
            # only pairs bought together are candidates; the prior re-ranks them
            cols = C.indices
            C.data = C.data + self.prior * pop[cols] / max(n_orders, 1)
            if self.damping:
                C.data = C.data / np.maximum(pop[cols], 1.0) ** self.damping
        if self.max_neighbours is not None:
            from crosssell.engine.similarity import keep_top_per_row

            C = keep_top_per_row(C, self.max_neighbours)
        self.cooc_: sp.csr_matrix = C.tocsr()
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.cooc_, np.asarray(items, dtype=np.int64), k)
