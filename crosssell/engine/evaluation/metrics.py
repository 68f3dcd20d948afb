"""Ranking metrics of the two protocols, vectorised over queries.

Every function takes a boolean ``hits`` matrix (one row per query, one column per rank, ``True``
where the item at that rank is relevant) and the number of relevant items per query.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BoolMatrix = npt.NDArray[np.bool_]
Counts = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def _discounts(k: int) -> Floats:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def hit_rate(hits: BoolMatrix) -> Floats:
    """1 when any of the ranked items is relevant, per query."""
    return np.asarray(hits.any(axis=1), dtype=np.float64)


def recall_capped(hits: BoolMatrix, n_relevant: Counts) -> Floats:
    """FBT-v1 recall: hits / min(|relevant|, k), per query."""
    k = hits.shape[1]
    return hits.sum(axis=1) / np.minimum(n_relevant, k).clip(min=1)


def recall(hits: BoolMatrix, n_relevant: Counts) -> Floats:
    """PERSONAL-MS recall: hits / |relevant|, per query."""
    return hits.sum(axis=1) / np.asarray(n_relevant, dtype=np.float64).clip(min=1)


def precision(hits: BoolMatrix) -> Floats:
    """hits / k, per query."""
    return hits.sum(axis=1) / hits.shape[1]


def ndcg(hits: BoolMatrix, n_relevant: Counts) -> Floats:
    """Binary NDCG with discount ``1/log2(rank+1)``, ideal DCG over min(|relevant|, k) ranks."""
    k = hits.shape[1]
    disc = _discounts(k)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_relevant, k).clip(min=1)]
    return (hits * disc).sum(axis=1) / ideal


def average_precision(hits: BoolMatrix, n_relevant: Counts) -> Floats:
    """recommenders' ``map()``: sum over hits of (hit number / rank), divided by |relevant|."""
    k = hits.shape[1]
    ranks = np.arange(1, k + 1, dtype=np.float64)
    hit_no = np.cumsum(hits, axis=1)
    return (hits * hit_no / ranks).sum(axis=1) / np.asarray(n_relevant, dtype=np.float64).clip(
        min=1
    )
