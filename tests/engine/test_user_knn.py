"""User-based CF and EASE agree with brute-force dense computations."""

from __future__ import annotations

import numpy as np

from crosssell.engine.user_knn import EASE, UserKNN
from tests.engine.conftest import random_interactions


def test_user_knn_matches_brute_force_cosine() -> None:
    data = random_interactions(n_orders=300, n_items=40, seed=11)
    U = data.customer_items().toarray()
    norms = np.linalg.norm(U, axis=1)
    norms[norms == 0] = 1
    Un = U / norms[:, None]
    S = Un @ Un.T
    np.fill_diagonal(S, 0)
    k = 10
    model = UserKNN(neighbours=k, popularity_weight=0.0).fit(data)
    Sk = np.zeros_like(S)
    for u in range(len(S)):
        got = model.similarity_[u].indices
        # the kept neighbours are the k most similar customers with their cosine
        np.testing.assert_allclose(model.similarity_[u].data, S[u, got], rtol=1e-5)
        if np.count_nonzero(S[u]) > k:
            assert model.similarity_[u].data.min() >= np.sort(S[u])[::-1][k - 1] - 1e-6
        Sk[u, got] = S[u, got]
    scores = Sk @ U
    scores[U > 0] = -np.inf
    top = model.recommend(np.arange(len(U)), 5)
    for u in range(len(U)):
        row = top.indices[u][top.indices[u] >= 0]
        np.testing.assert_allclose(top.scores[u][: len(row)], scores[u, row], rtol=1e-5)
        assert not (U[u, row] > 0).any()
        best = scores[u][np.isfinite(scores[u]) & (scores[u] > 0)]
        if len(best):
            assert np.isclose(top.scores[u, 0], best.max(), rtol=1e-5)


def test_ease_matches_the_closed_form() -> None:
    data = random_interactions(n_orders=300, n_items=25, seed=12)
    U = data.customer_items().toarray()
    lam = 5.0
    P = np.linalg.inv(U.T @ U + lam * np.eye(U.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0)
    model = EASE(l2=lam).fit(data)
    full = np.zeros_like(B)
    full[np.ix_(model.items_, model.items_)] = model.weights_
    sold = U.sum(axis=0) > 0
    np.testing.assert_allclose(full[np.ix_(sold, sold)], B[np.ix_(sold, sold)], atol=1e-8)
    top = model.recommend([0, 1, 2], 3)
    scores = U[[0, 1, 2]] @ B
    for r in range(3):
        s = scores[r].copy()
        s[U[r] > 0] = -np.inf
        s[~sold] = -np.inf
        assert top.indices[r, 0] == int(np.argmax(s))


def test_ease_models_only_the_most_bought_items() -> None:
    data = random_interactions(n_orders=300, n_items=25, seed=13)
    model = EASE(l2=5.0, max_items=10).fit(data)
    assert len(model.items_) == 10
    top = model.recommend(np.arange(5), 12)
    assert set(top.indices[top.indices >= 0].tolist()) <= set(model.items_.tolist())
