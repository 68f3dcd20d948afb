"""Item-item similarities agree with a brute-force dense computation."""

from __future__ import annotations

import numpy as np
import pytest

from crosssell.engine.item_knn import ItemKNN, item_similarity
from tests.engine.conftest import random_interactions


def _dense_similarity(X: np.ndarray, alpha: float) -> np.ndarray:
    co = X.T @ X
    n = X.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        S = co / (n[:, None] ** alpha * n[None, :] ** (1 - alpha))
    S[~np.isfinite(S)] = 0
    np.fill_diagonal(S, 0)
    return S


@pytest.mark.parametrize(("similarity", "alpha"), [("cosine", 0.5), ("asymmetric", 0.8)])
def test_item_similarity_matches_brute_force(similarity: str, alpha: float) -> None:
    data = random_interactions(n_orders=400, n_items=30, seed=5)
    X = data.baskets.toarray()
    S = item_similarity(data.baskets, 8, similarity, alpha)  # type: ignore[arg-type]
    D = _dense_similarity(X, alpha)
    for i in range(30):
        got = S.indices[S.indptr[i] : S.indptr[i + 1]]
        vals = S.data[S.indptr[i] : S.indptr[i + 1]]
        np.testing.assert_allclose(vals, D[i, got], rtol=1e-5)
        # the kept values are the 8 largest (up to ties at the boundary)
        kth = np.sort(D[i])[::-1][min(7, np.count_nonzero(D[i]) - 1)]
        assert vals.min() >= kth - 1e-6
        assert i not in got


def test_shrinkage_demotes_pairs_seen_together_once() -> None:
    data = random_interactions(n_orders=400, n_items=30, seed=6)
    X = data.baskets.toarray()
    plain = item_similarity(data.baskets, 29, "cosine").toarray()
    shrunk = item_similarity(data.baskets, 29, "cosine", shrink=5.0).toarray()
    co = X.T @ X
    mask = plain > 0
    np.testing.assert_allclose(shrunk[mask], plain[mask] * co[mask] / (co[mask] + 5.0), rtol=1e-5)


def test_item_knn_similar_items_ranks_by_similarity() -> None:
    data = random_interactions(seed=7)
    model = ItemKNN(neighbours=10, weighting="bm25").fit(data)
    top = model.similar_items([0, 1], 5)
    assert (np.diff(top.scores, axis=1) <= 1e-7).all()
    with pytest.raises(ValueError):
        ItemKNN(weighting="nope").fit(data)  # type: ignore[arg-type]
