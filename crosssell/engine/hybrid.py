"""Co-purchase counts shrunk toward what the product's look-alikes sell with.

For an item with many orders its own co-purchase counts speak; for an item with few the
estimate leans on its content look-alikes' companions
(:class:`~crosssell.engine.content.ContentCompanions`, itself shrunk toward popularity); an
item with none is served what its category sells with
(:class:`~crosssell.engine.content.CategoryCompanions`). One strategy thus serves best sellers,
the long tail and brand-new products.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender, TopK, topk_rows
from crosssell.engine.content import CategoryCompanions, ContentCompanions
from crosssell.engine.evidence import censor_pairs, privacy_threshold
from crosssell.engine.similarity import column_counts, keep_top_per_row, topk_product


class CoCountContent(ItemRecommender):
    """``count(i, j) + m * Q(j | i)``: co-purchases with a content-learned prior.

    ``Q(j | i)`` is :class:`~crosssell.engine.content.ContentCompanions`'s estimate (the
    look-alikes' pooled companions, shrunk toward popularity) for an item that sells, and
    ``category_weight`` times :class:`~crosssell.engine.content.CategoryCompanions`'s (what its
    category sells with) plus the rest times the look-alikes' for one with no sales and a
    category (``category_prior`` set): two estimates of ``P(j | i)`` from different evidence,
    averaged. Dividing by ``count(i) + m``
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
    category_prior, category_exponent
        Parameters of the category estimate served to items with no sales (``None``: the
        look-alikes' estimate alone serves them). 1000 and 1: best on the FBT-v1 validation
        splits' cold slices of both data sets (``benchmarks/tune_engine.py``).
    category_weight
        Share of the category estimate in a cold item's mixture (0.75: best of 0, 0.25, 0.5,
        0.75, 1 on the same cold slices, summed over both data sets).
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
        category_prior: float | None = 1000.0,
        category_exponent: float = 1.0,
        category_weight: float = 0.75,
        max_neighbours: int = 100,
        n_threads: int | None = None,
    ) -> None:
        self.prior = prior
        self.neighbours = neighbours
        self.companions = companions
        self.content_prior = content_prior
        self.category_prior = category_prior
        self.category_exponent = category_exponent
        self.category_weight = category_weight
        self.max_neighbours = max_neighbours
        self.n_threads = n_threads

    def fit(self, data: Interactions) -> Self:
        if self.prior < 0:
            raise ValueError("prior must be >= 0")
        if not 0 <= self.category_weight <= 1:
            raise ValueError("category_weight must be in [0, 1]")
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
        # A pair below the services' privacy threshold scores as if never bought together
        # (what the look-alikes say of it), so one order of it neither brings it into a list
        # nor moves it there, and the build may keep it where it stands.
        self.private_below_ = privacy_threshold(data)
        C = censor_pairs(C, data, self.private_below_)
        Q = content.scores_.tocsr().copy()
        if self.category_prior is not None:
            # an item with no sales: what its shelf sells with (complements), averaged with
            # what its look-alikes sell with
            cat = CategoryCompanions(
                prior=self.category_prior,
                exponent=self.category_exponent,
                max_neighbours=self.max_neighbours,
            ).fit(data)
            served = (column_counts(X) == 0) & (np.diff(cat.scores_.indptr) > 0)
            Q = (
                sp.diags((~served).astype(np.float64)) @ Q
                + sp.diags(served.astype(np.float64))
                @ (self.category_weight * cat.scores_ + (1 - self.category_weight) * Q)
            ).tocsr()
        Q.setdiag(0)
        Q.eliminate_zeros()
        S = (sp.csr_matrix(C, dtype=np.float64) + self.prior * Q).tocsr()
        self.scores_: sp.csr_matrix = keep_top_per_row(S, self.max_neighbours)
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.scores_, np.asarray(items, dtype=np.int64), k)
