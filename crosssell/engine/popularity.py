"""Popularity, global and per category: the last fallback, and the floor every strategy beats."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt

from crosssell.engine.base import FloatArray, IntArray, Interactions, ItemRecommender, TopK


class Popularity(ItemRecommender):
    """Rank every item by how many orders hold it (ties: smaller index first)."""

    name = "popularity"

    def __init__(self, include_unsold: bool = False) -> None:
        #: Rank never-sold items too (after every sold one), so lists are always full.
        self.include_unsold = include_unsold

    def fit(self, data: Interactions) -> Self:
        counts = np.asarray(data.baskets.sum(axis=0), dtype=np.float64).ravel()
        self.counts_: npt.NDArray[np.float64] = counts
        self.order_: IntArray = np.lexsort((np.arange(len(counts)), -counts)).astype(np.int64)
        if not self.include_unsold:
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


def category_levels(categories: list[str], sep: str = ">") -> list[list[str]]:
    """Each category path as its prefixes, most specific first: ``"a > b"`` -> ``["a>b", "a"]``."""
    out: list[list[str]] = []
    for c in categories:
        parts = [p.strip().lower() for p in c.split(sep) if p.strip()]
        out.append([">".join(parts[:n]) for n in range(len(parts), 0, -1)])
    return out


class CategoryPopularity(ItemRecommender):
    """Bestsellers of the item's own category, then of its parent categories, then global ones.

    Needs ``Interactions.content`` for categories; without it this is global popularity.

    Parameters
    ----------
    fallback_global
        Complete short lists with global bestsellers (else leave them padded).
    """

    name = "category_popularity"

    def __init__(self, fallback_global: bool = True) -> None:
        self.fallback_global = fallback_global

    def fit(self, data: Interactions) -> Self:
        counts = np.asarray(data.baskets.sum(axis=0), dtype=np.float64).ravel()
        self.counts_ = counts
        order = np.lexsort((np.arange(len(counts)), -counts)).astype(np.int64)
        self.order_: IntArray = order[counts[order] > 0]
        cats = data.content.categories if data.content is not None else [""] * data.n_items
        self.levels_ = category_levels(cats)
        members: dict[str, list[int]] = {}
        for i in self.order_.tolist():  # bestsellers first, so each list is ranked
            for path in self.levels_[i]:
                members.setdefault(path, []).append(i)
        self.members_: dict[str, IntArray] = {
            p: np.asarray(v, dtype=np.int64) for p, v in members.items()
        }
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        q = np.asarray(items, dtype=np.int64)
        out_i = np.full((len(q), k), -1, dtype=np.int64)
        out_s: FloatArray = np.zeros((len(q), k), dtype=np.float32)
        head = self.order_[: k + 1]
        for pos, item in enumerate(q.tolist()):
            row: list[int] = []
            seen = {item}
            pools = [self.members_.get(p, head[:0]) for p in self.levels_[item]]
            if self.fallback_global:
                pools.append(head)
            for pool in pools:
                for j in pool[: k + len(seen)].tolist():
                    if j not in seen:
                        seen.add(j)
                        row.append(j)
                if len(row) >= k:
                    break
            row = row[:k]
            out_i[pos, : len(row)] = row
            out_s[pos, : len(row)] = self.counts_[row]
        return TopK(out_i, out_s)
