"""Co-purchase counts shrunk toward what the product's look-alikes sell with.

For an item with many orders its own co-purchase counts speak; for an item with few the
estimate leans on its content look-alikes' companions
(:class:`~crosssell.engine.content.ContentCompanions`, itself shrunk toward popularity); an
item with none is served what its category sells with
(:class:`~crosssell.engine.content.CategoryCompanions`). One strategy thus serves best sellers,
the long tail and brand-new products.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender, TopK, topk_rows
from crosssell.engine.content import CategoryCompanions, ContentCompanions
from crosssell.engine.evidence import censor_pairs, privacy_threshold
from crosssell.engine.similarity import column_counts, keep_top_per_row, topk_product


@dataclass(frozen=True)
class CoCountContentParts:
    """What :class:`CoCountContent` learns before its ``prior``, ``content_prior`` and
    ``category_weight`` combine it (:meth:`CoCountContent.fit_parts`).

    Attributes
    ----------
    counts
        Co-purchase counts, each item's best, the pairs below the privacy threshold removed.
    content
        :class:`~crosssell.engine.content.ContentCompanions`'s scores under ``content_prior``.
    content_prior
        The look-alikes' popularity prior ``content`` was computed with.
    pooled
        Per item, its look-alikes' weighted order count (``ContentCompanions.pooled_``).
    share
        Per item, the share of orders holding it (``P(j)``).
    category
        :class:`~crosssell.engine.content.CategoryCompanions`'s scores, or ``None``.
    served
        The items with no sales that the category estimate serves.
    private_below
        The privacy threshold the counts were censored with.
    """

    counts: sp.csr_matrix
    content: sp.csr_matrix
    content_prior: float
    pooled: npt.NDArray[np.float64]
    share: npt.NDArray[np.float64]
    category: sp.csr_matrix | None
    served: npt.NDArray[np.bool_]
    private_below: int

    def estimate(
        self,
        content_prior: float,
        category_weight: float,
        rows: npt.NDArray[np.int64] | None = None,
    ) -> sp.csr_matrix:
        """``Q(j | i)``, the content prior, of every item or of the items ``rows`` (in order).

        Under another ``content_prior`` ``c`` the look-alikes' estimate
        ``(A + c0 P(j)) / (pooled + c0)`` becomes ``(A + c P(j)) / (pooled + c)``: the same
        support, each entry rescaled.
        """
        Q = self.content.copy() if rows is None else self.content[rows]
        if content_prior != self.content_prior:
            pooled = self.pooled if rows is None else self.pooled[rows]
            at = np.repeat(pooled, np.diff(Q.indptr))
            Q.data = (
                Q.data * (at + self.content_prior)
                + (content_prior - self.content_prior) * self.share[Q.indices]
            ) / (at + content_prior)
        if self.category is not None:
            served = self.served if rows is None else self.served[rows]
            cat = self.category if rows is None else self.category[rows]
            Q = (
                sp.diags((~served).astype(np.float64)) @ Q
                + sp.diags(served.astype(np.float64))
                @ (category_weight * cat + (1 - category_weight) * Q)
            ).tocsr()
        if rows is None:
            Q.setdiag(0)
        else:  # row r is item rows[r]: its own entry goes
            Q.data[Q.indices == np.repeat(rows, np.diff(Q.indptr))] = 0
        Q.eliminate_zeros()
        return Q

    def scores(
        self,
        prior: float,
        content_prior: float,
        category_weight: float,
        max_neighbours: int,
        rows: npt.NDArray[np.int64] | None = None,
    ) -> sp.csr_matrix:
        """``count(i, j) + prior * Q(j | i)``, each row's ``max_neighbours`` best, of every
        item or of the items ``rows`` (row ``r`` is item ``rows[r]``)."""
        C = self.counts if rows is None else self.counts[rows]
        Q = self.estimate(content_prior, category_weight, rows)
        S = (sp.csr_matrix(C, dtype=np.float64) + prior * Q).tocsr()
        return keep_top_per_row(S, max_neighbours)


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
        self._check()
        return self.fit_parts_into(self.fit_parts(data))

    def _check(self) -> None:
        if self.prior < 0:
            raise ValueError("prior must be >= 0")
        if not 0 <= self.category_weight <= 1:
            raise ValueError("category_weight must be in [0, 1]")

    def fit_parts(self, data: Interactions) -> CoCountContentParts:
        """What the fit learns before ``prior``, ``content_prior`` and ``category_weight``
        combine it (the expensive part: counts, look-alikes, categories).

        :meth:`fit_parts_into` finishes the fit from them, for these three parameters set to
        any value: the tuner fits the parts once and tries several
        (:mod:`crosssell.engine.tuning`).
        """
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
        private_below = privacy_threshold(data)
        C = censor_pairs(C, data, private_below)
        pop = column_counts(X)
        category: sp.csr_matrix | None = None
        served = np.zeros(data.n_items, dtype=bool)
        if self.category_prior is not None:
            # an item with no sales: what its shelf sells with (complements), averaged with
            # what its look-alikes sell with
            cat = CategoryCompanions(
                prior=self.category_prior,
                exponent=self.category_exponent,
                max_neighbours=self.max_neighbours,
            ).fit(data)
            category = cat.scores_
            served = (pop == 0) & (np.diff(cat.scores_.indptr) > 0)
        return CoCountContentParts(
            counts=C,
            content=content.scores_.tocsr(),
            content_prior=float(self.content_prior),
            pooled=content.pooled_,
            share=pop / max(data.n_orders, 1),
            category=category,
            served=served,
            private_below=private_below,
        )

    def fit_parts_into(self, parts: CoCountContentParts) -> Self:
        """Finish the fit from :meth:`fit_parts` of a strategy that differs from this one in
        ``prior``, ``content_prior`` and ``category_weight`` at most."""
        self._check()
        self.private_below_: int = parts.private_below
        self.scores_: sp.csr_matrix = parts.scores(
            self.prior, self.content_prior, self.category_weight, self.max_neighbours
        )
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.scores_, np.asarray(items, dtype=np.int64), k)
