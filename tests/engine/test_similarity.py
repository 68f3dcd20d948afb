"""Sparse top-k products and exact pair counts agree with brute force."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from crosssell.engine import similarity
from crosssell.engine.similarity import keep_top_per_row, pair_counts, topk_product
from tests.engine.conftest import random_interactions


def _brute_topk(D: np.ndarray, k: int, exclude_diagonal: bool) -> list[set[int]]:
    D = D.copy()
    if exclude_diagonal:
        np.fill_diagonal(D, 0)
    out = []
    for row in D:
        pos = np.flatnonzero(row > 0)
        out.append(set(pos[np.argsort(-row[pos], kind="stable")][:k].tolist()))
    return out


@pytest.mark.parametrize("use_topn", [True, False])
@pytest.mark.parametrize("exclude_diagonal", [True, False])
def test_topk_product_matches_dense(
    monkeypatch: pytest.MonkeyPatch, use_topn: bool, exclude_diagonal: bool
) -> None:
    if not use_topn:
        monkeypatch.setattr(similarity, "_have_topn", lambda: False)
    rng = np.random.default_rng(1)
    # continuous values: no ties, so the top sets are unique
    A = sp.random(60, 30, density=0.2, random_state=rng, format="csr")
    S = topk_product(A, A.T.tocsr(), 5, exclude_diagonal=exclude_diagonal)
    D = (A @ A.T).toarray()
    want = _brute_topk(D, 5, exclude_diagonal)
    for i in range(60):
        got = S.indices[S.indptr[i] : S.indptr[i + 1]]
        assert set(got.tolist()) == want[i]
        np.testing.assert_allclose(S[i, got].toarray().ravel(), D[i, got], rtol=1e-6)


def test_keep_top_per_row_breaks_ties_by_column() -> None:
    S = sp.csr_matrix(np.array([[1.0, 2.0, 2.0, 0.5], [0.0, 0.0, 3.0, 0.0]]))
    K = keep_top_per_row(S, 2).toarray()
    np.testing.assert_array_equal(K, [[0.0, 2.0, 2.0, 0.0], [0.0, 0.0, 3.0, 0.0]])
    K1 = keep_top_per_row(S, 1).toarray()
    np.testing.assert_array_equal(K1[0], [0.0, 2.0, 0.0, 0.0])


def test_pair_counts_match_dense_cooccurrence() -> None:
    data = random_interactions(seed=3)
    X = data.baskets
    D = (X.T @ X).toarray()
    rng = np.random.default_rng(0)
    src = rng.integers(0, data.n_items, 500)
    dst = rng.integers(0, data.n_items, 500)
    np.testing.assert_array_equal(pair_counts(X, src, dst, chunk=7), D[src, dst].astype(int))
    assert pair_counts(X, src[:0], dst[:0]).shape == (0,)
    with pytest.raises(ValueError):
        pair_counts(X, src, dst[:3])


def test_weightings_keep_the_sparsity_and_shrink_big_orders() -> None:
    X = sp.csr_matrix(np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=float))
    for W in (similarity.bm25_weight(X), similarity.tfidf_weight(X)):
        assert W.nnz == X.nnz and (W.data > 0).all()
        # a line of a 4-item order weighs less than the same item's line in a 1-item order
        assert W[0, 0] < W[2, 0]
