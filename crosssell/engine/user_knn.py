"""User-based collaborative filtering and EASE: "recommended for you".

Both rank items for customers from ``Interactions.customer_items()`` (who ever bought what).
"""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import (
    IntArray,
    Interactions,
    TopK,
    UserRecommender,
    dense_topk,
    empty_topk,
)
from crosssell.engine.similarity import column_counts, l2_normalize_rows, topk_product

#: Customers scored at once (bounds the dense ``customers x items`` block in memory).
BATCH = 1024


def _check_customers(customers: npt.ArrayLike, n_customers: int) -> IntArray:
    c = np.asarray(customers, dtype=np.int64).ravel()
    if len(c) and (c.min() < 0 or c.max() >= n_customers):
        raise IndexError("customer index out of range")
    return c


def _rank_batches(
    score_fn: object, U: sp.csr_matrix, customers: IntArray, k: int, exclude_seen: bool
) -> TopK:
    """Score customers batch by batch with ``score_fn(rows) -> dense`` and keep the top ``k``."""
    out = empty_topk(len(customers), k)
    for start in range(0, len(customers), BATCH):
        rows = customers[start : start + BATCH]
        S = score_fn(rows)  # type: ignore[operator]
        top = dense_topk(S, k, U[rows] if exclude_seen else None)
        out.indices[start : start + len(rows)] = top.indices
        out.scores[start : start + len(rows)] = top.scores
    return out


class UserKNN(UserRecommender):
    """Customers alike in what they bought recommend to each other (cosine, ``k`` neighbours).

    Parameters
    ----------
    neighbours
        Most similar customers kept per customer.
    popularity_weight
        Tiny weight of item popularity added to the scores, so a customer whose neighbours
        recommend few items still gets a full list (bestsellers last).
    n_threads
        Threads of the sparse product (``None``: one).
    """

    name = "user_knn"

    def __init__(
        self, neighbours: int = 100, popularity_weight: float = 1e-6, n_threads: int | None = None
    ) -> None:
        self.neighbours = neighbours
        self.popularity_weight = popularity_weight
        self.n_threads = n_threads

    def fit(self, data: Interactions) -> Self:
        if self.neighbours < 1:
            raise ValueError("neighbours must be >= 1")
        U = data.customer_items()
        Un = l2_normalize_rows(U)
        self.similarity_: sp.csr_matrix = topk_product(
            Un, Un.T.tocsr(), self.neighbours, n_threads=self.n_threads, exclude_diagonal=True
        )
        self.user_items_: sp.csr_matrix = U
        counts = column_counts(U)
        self.prior_ = self.popularity_weight * counts / max(counts.max(initial=0.0), 1.0)
        return self

    def _scores(self, rows: IntArray) -> npt.NDArray[np.float64]:
        S = (self.similarity_[rows] @ self.user_items_).toarray()
        return S + self.prior_[None, :]

    def recommend(self, customers: npt.ArrayLike, k: int, exclude_seen: bool = True) -> TopK:
        c = _check_customers(customers, self.user_items_.shape[0])
        return _rank_batches(self._scores, self.user_items_, c, k, exclude_seen)


class EASE(UserRecommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019): a closed-form item-item model.

    ``B = I - P / diag(P)`` with ``P = (X'X + l2 I)^-1`` and a zero diagonal; a customer's scores
    are ``x @ B``. It needs a dense ``items x items`` inverse, so only the ``max_items`` most
    bought items are modelled (the others are never recommended by it).

    Parameters
    ----------
    l2
        Ridge regularisation (800: the best of 100-1600 on a validation split carved from
        PERSONAL-MS's training rows of MovieLens-100k, ``benchmarks/tune_engine.py``).
    max_items
        Largest number of items modelled (memory grows with its square).
    """

    name = "ease"

    def __init__(self, l2: float = 800.0, max_items: int = 10_000) -> None:
        self.l2 = l2
        self.max_items = max_items

    def fit(self, data: Interactions) -> Self:
        if self.l2 <= 0:
            raise ValueError("l2 must be > 0")
        U = data.customer_items()
        counts = column_counts(U)
        order = np.lexsort((np.arange(len(counts)), -counts))
        self.items_: IntArray = np.sort(order[counts[order] > 0][: self.max_items]).astype(np.int64)
        Xs = U[:, self.items_].astype(np.float64)
        G = (Xs.T @ Xs).toarray()
        G[np.diag_indices_from(G)] += self.l2
        P = np.linalg.inv(G)
        B = -P / np.diag(P)[None, :]
        np.fill_diagonal(B, 0.0)
        self.weights_: npt.NDArray[np.float64] = B
        self.user_items_: sp.csr_matrix = U
        self.n_items_ = data.n_items
        return self

    def _scores(self, rows: IntArray) -> npt.NDArray[np.float64]:
        S = np.full((len(rows), self.n_items_), -np.inf)
        S[:, self.items_] = self.user_items_[rows][:, self.items_] @ self.weights_
        return S

    def recommend(self, customers: npt.ArrayLike, k: int, exclude_seen: bool = True) -> TopK:
        c = _check_customers(customers, self.user_items_.shape[0])
        return _rank_batches(self._scores, self.user_items_, c, k, exclude_seen)
