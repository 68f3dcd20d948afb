"""Co-purchase counts: how many orders hold both items (the best peer of FBT-v1)."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender, TopK, topk_rows


def cooccurrence(baskets: sp.csr_matrix) -> sp.csr_matrix:
    """``n_items x n_items`` co-purchase counts (the diagonal holds each item's own count)."""
    X = baskets.astype(np.float32)
    return (X.T @ X).tocsr()


class CoCount(ItemRecommender):
    """Rank companions by the number of orders that hold both (equivalently, by confidence)."""

    name = "cocount"

    def __init__(self, min_count: int = 1) -> None:
        self.min_count = min_count

    def fit(self, data: Interactions) -> Self:
        C = cooccurrence(data.baskets)
        C.setdiag(0)
        C.data[C.data < self.min_count] = 0
        C.eliminate_zeros()
        self.cooc_: sp.csr_matrix = C
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.cooc_, np.asarray(items, dtype=np.int64), k)
