"""Item-based collaborative filtering: items are alike when the same orders hold them.

Similarities are computed as one sparse product that keeps only each item's ``neighbours`` best
(:func:`crosssell.engine.similarity.topk_product`), never as a dense ``items x items`` matrix.
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender, TopK, topk_rows
from crosssell.engine.similarity import (
    bm25_weight,
    column_counts,
    keep_top_per_row,
    pair_counts,
    scale_columns,
    tfidf_weight,
    topk_product,
)

Weighting = Literal["none", "tfidf", "bm25"]
Similarity = Literal["cosine", "asymmetric"]


def column_norms(X: sp.csr_matrix) -> npt.NDArray[np.float64]:
    """Euclidean length of each column."""
    sq = np.bincount(X.indices, weights=np.asarray(X.data, np.float64) ** 2, minlength=X.shape[1])
    return np.sqrt(sq)


def item_similarity(
    X: sp.csr_matrix,
    neighbours: int,
    similarity: Similarity = "cosine",
    alpha: float = 0.5,
    weighting: Weighting = "none",
    shrink: float = 0.0,
    n_threads: int | None = None,
) -> sp.csr_matrix:
    """Top ``neighbours`` item-item similarities of an ``orders x items`` matrix.

    Parameters
    ----------
    X
        Binary ``orders x items`` (or ``customers x items``) CSR matrix.
    neighbours
        Similar items kept per item.
    similarity
        ``"cosine"``: ``<x_i, x_j> / (|x_i| |x_j|)``; ``"asymmetric"``:
        ``<x_i, x_j> / (|x_i|^(2 alpha) |x_j|^(2 (1 - alpha)))`` (alpha 0.5 is the cosine; a
        larger alpha favours popular companions of a rare item).
    alpha
        Exponent of the asymmetric cosine.
    weighting
        Line weights before the product: ``"tfidf"`` or ``"bm25"`` (big orders count less).
    shrink
        Shrinkage ``h``: each similarity is multiplied by ``c / (c + h)`` where ``c`` is the
        number of orders holding both items, so pairs seen together once count less.
    n_threads
        Threads for the sparse product.
    """
    if weighting == "bm25":
        W = bm25_weight(X)
    elif weighting == "tfidf":
        W = tfidf_weight(X)
    elif weighting == "none":
        W = sp.csr_matrix(X, dtype=np.float32)
    else:
        raise ValueError(f"unknown weighting {weighting!r}")
    norms = column_norms(W)
    a = 0.5 if similarity == "cosine" else alpha
    if similarity not in ("cosine", "asymmetric"):
        raise ValueError(f"unknown similarity {similarity!r}")
    left = np.zeros_like(norms)
    right = np.zeros_like(norms)
    np.divide(1.0, norms ** (2 * a), out=left, where=norms > 0)
    np.divide(1.0, norms ** (2 * (1 - a)), out=right, where=norms > 0)
    B = scale_columns(W, right).astype(np.float32, copy=False)
    # the cosine scales both sides alike: one scaled copy, transposed
    A = (B if a == 0.5 else scale_columns(W, left).astype(np.float32, copy=False)).T.tocsr()
    # shrinkage re-ranks, so it needs more candidates than it keeps
    wide = neighbours if shrink <= 0 else 3 * neighbours
    S = topk_product(A, B, wide, n_threads=n_threads, exclude_diagonal=True)
    if shrink > 0 and S.nnz:
        S = S.tocoo()
        c = pair_counts(X, S.row.astype(np.int64), S.col.astype(np.int64)).astype(np.float64)
        S = sp.csr_matrix((S.data * c / (c + shrink), (S.row, S.col)), shape=S.shape)
        S.eliminate_zeros()
        S = keep_top_per_row(S, neighbours)
    return S.tocsr()


class ItemKNN(ItemRecommender):
    """Item-item collaborative filtering ("customers who bought this also bought").

    Parameters
    ----------
    neighbours
        Similar items kept per item (the lists are at most this long).
    similarity, alpha, weighting, shrink
        See :func:`item_similarity`.
    n_threads
        Threads of the sparse product (``None``: one).
    """

    name = "item_knn"

    def __init__(
        self,
        neighbours: int = 50,
        similarity: Similarity = "cosine",
        alpha: float = 0.5,
        weighting: Weighting = "none",
        shrink: float = 0.0,
        n_threads: int | None = None,
    ) -> None:
        self.neighbours = neighbours
        self.similarity = similarity
        self.alpha = alpha
        self.weighting = weighting
        self.shrink = shrink
        self.n_threads = n_threads

    def fit(self, data: Interactions) -> Self:
        if self.neighbours < 1:
            raise ValueError("neighbours must be >= 1")
        self.similarity_: sp.csr_matrix = item_similarity(
            data.baskets,
            self.neighbours,
            self.similarity,
            self.alpha,
            self.weighting,
            self.shrink,
            self.n_threads,
        )
        self.counts_ = column_counts(data.baskets)
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.similarity_, np.asarray(items, dtype=np.int64), k)
