"""Co-purchase counts shrunk toward what the product's look-alikes sell with.

For an item with many orders its own co-purchase counts speak; for an item with few, or none,
the estimate leans on its content look-alikes' companions
(:class:`~crosssell.engine.content.ContentCompanions`, itself shrunk toward popularity). One
strategy thus serves best sellers, the long tail and brand-new products.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender, TopK, topk_rows
from crosssell.engine.content import ContentCompanions
from crosssell.engine.similarity import keep_top_per_row, topk_product


class CoCountContent(ItemRecommender):
    """``count(i, j) + m * Q(j | i)``: co-purchases with a content-learned prior.

    ``Q(j | i)`` is :class:`~crosssell.engine.content.ContentCompanions`'s estimate (the
    look-alikes' pooled companions, shrunk toward popularity). Dividing by ``count(i) + m``
    would make it the Bayesian estimate of ``P(j | i)`` under that prior; the ranking of ``i``'s
    companions does not need the division.

    Parameters
    ----------
    prior
        Weight ``m`` of the content prior, in orders (30: best of 10, 30, 100 on the FBT-v1
        validation splits carved from the training orders, ``benchmarks/tune_engine.py``).
    neighbours, companions, content_prior
        Parameters of the content prior (look-alikes pooled, companions per look-alike, its
        own popularity prior).
    max_neighbours
        Companions kept per item.
    n_threads
        Threads of the sparse products.
    """

    name = "cocount_content"

    def __init__(
        self,
        prior: float = 30.0,
        neighbours: int = 20,
        companions: int = 100,
        content_prior: float = 300.0,
        max_neighbours: int = 100,
        n_threads: int | None = None,
    ) -> None:
        self.prior = prior
        self.neighbours = neighbours
        self.companions = companions
        self.content_prior = content_prior
        self.max_neighbours = max_neighbours
        self.n_threads = n_threads

    def fit(self, data: Interactions) -> Self:
        if self.prior < 0:
            raise ValueError("prior must be >= 0")
        content = ContentCompanions(
            neighbours=self.neighbours,
            companions=self.companions,
            prior=self.content_prior,
            max_neighbours=self.max_neighbours,
            n_threads=self.n_threads,
        ).fit(data)
        X = data.baskets
        # each item's own best co-purchases (bounded: never all pairs of a huge catalog)
        C = topk_product(
            X.T.tocsr(), X, 2 * self.max_neighbours, self.n_threads, exclude_diagonal=True
        )
        Q = content.scores_.tocsr().copy()
        Q.setdiag(0)
        Q.eliminate_zeros()
        S = (sp.csr_matrix(C, dtype=np.float64) + self.prior * Q).tocsr()
        self.scores_: sp.csr_matrix = keep_top_per_row(S, self.max_neighbours)
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.scores_, np.asarray(items, dtype=np.int64), k)
