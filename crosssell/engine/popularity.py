"""Popularity, global and per category: the last fallback, and the floor every strategy beats."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt

from crosssell.engine.base import FloatArray, IntArray, Interactions, ItemRecommender, TopK


class Popularity(ItemRecommender):
    """Rank every item by how many orders hold it (ties: smaller index first)."""

    name = "popularity"

    def fit(self, data: Interactions) -> Self:
        counts = np.asarray(data.baskets.sum(axis=0), dtype=np.float64).ravel()
        self.counts_: npt.NDArray[np.float64] = counts
        self.order_: IntArray = np.lexsort((np.arange(len(counts)), -counts)).astype(np.int64)
        self.order_ = self.order_[counts[self.order_] > 0]
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        q = np.asarray(items, dtype=np.int64)
        head = self.order_[: k + 1]
        out_i = np.full((len(q), k), -1, dtype=np.int64)
        out_s: FloatArray = np.zeros((len(q), k), dtype=np.float32)
        for pos, item in enumerate(q):
            row = head[head != item][:k]
            out_i[pos, : len(row)] = row
            out_s[pos, : len(row)] = self.counts_[row]
        return TopK(out_i, out_s)
