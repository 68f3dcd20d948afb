"""Exact co-counts computed once and looked up: the same numbers as a brute-force count."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from crosssell.engine import similarity
from crosssell.engine.base import Interactions, topk_rows
from crosssell.engine.evidence import pair_evidence
from crosssell.engine.similarity import (
    PairCounter,
    cooccurrence_counts,
    lookup_pairs,
    pair_counts,
    top_counts_per_row,
)
from tests.engine.conftest import random_interactions


def dense_counts(M: sp.csr_matrix) -> np.ndarray:
    """``M.T @ M`` of the binarised matrix, by brute force."""
    D = (M.toarray() != 0).astype(np.int64)
    return D.T @ D


def shuffled_rows(C: sp.csr_matrix, seed: int) -> sp.csr_matrix:
    """``C`` with its entries in a random order within each row (indices unsorted)."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
    order = np.lexsort((rng.random(C.nnz), rows))
    out = sp.csr_matrix((C.data[order], C.indices[order], C.indptr.copy()), shape=C.shape)
    out.has_sorted_indices = False
    return out


def some_pairs(n_items: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random pairs, with repeated pairs and pairs of an item with itself on purpose."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n_items, n)
    dst = rng.integers(0, n_items, n)
    src = np.concatenate([src, src[:20], np.arange(5)])
    dst = np.concatenate([dst, dst[:20], np.arange(5)])
    return src.astype(np.int64), dst.astype(np.int64)


@pytest.mark.parametrize("use_topn", [True, False])
def test_cooccurrence_counts_are_exact_integers(
    monkeypatch: pytest.MonkeyPatch, use_topn: bool
) -> None:
    if not use_topn:
        monkeypatch.setattr(similarity, "_have_topn", lambda: False)
    for seed in range(4):
        data = random_interactions(n_orders=200, n_items=30, density=0.15, seed=seed)
        C = cooccurrence_counts(data.baskets)
        assert C.dtype.kind == "i"
        np.testing.assert_array_equal(C.toarray(), dense_counts(data.baskets))
    empty = cooccurrence_counts(sp.csr_matrix((4, 3), dtype=np.float32))
    assert empty.shape == (3, 3) and empty.nnz == 0


def test_lookup_pairs_on_unsorted_indices_matches_dense() -> None:
    data = random_interactions(n_orders=300, n_items=40, density=0.1, seed=7)
    want = dense_counts(data.baskets)
    C = shuffled_rows(sp.csr_matrix(want), seed=1)
    src, dst = some_pairs(40, 600, seed=2)
    got = lookup_pairs(C, src, dst)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want[src, dst])
    assert (got == 0).any() and (got > 1).any()  # absent and repeated co-purchases both seen
    assert lookup_pairs(C, src[:0], dst[:0]).shape == (0,)
    with pytest.raises(ValueError):
        lookup_pairs(C, src, dst[:3])
    # float counts (as a strategy may hold them) are read back as integers
    np.testing.assert_array_equal(lookup_pairs(C.astype(np.float32), src, dst), want[src, dst])


def test_pair_counts_in_blocks_with_repeated_sources() -> None:
    data = random_interactions(n_orders=250, n_items=35, density=0.12, seed=11)
    want = dense_counts(data.baskets)
    src, dst = some_pairs(35, 500, seed=3)
    for chunk in (1, 4, 7, 1000):
        np.testing.assert_array_equal(
            pair_counts(data.baskets, src, dst, chunk=chunk), want[src, dst]
        )


def test_pair_counter_counts_the_same_whole_or_in_blocks() -> None:
    data = random_interactions(n_orders=300, n_items=40, density=0.1, seed=5)
    U = data.customer_items()
    want = dense_counts(U)
    src, dst = some_pairs(40, 500, seed=4)
    few = PairCounter(U)  # a handful of sources: counted in blocks, nothing kept
    np.testing.assert_array_equal(few(src[:10], dst[:10]), want[src[:10], dst[:10]])
    assert few._matrix is None
    whole = PairCounter(U)  # most items as sources: the whole product, kept for later calls
    np.testing.assert_array_equal(whole(src, dst), want[src, dst])
    kept = whole._matrix
    assert kept is not None
    np.testing.assert_array_equal(whole(src[:10], dst[:10]), want[src[:10], dst[:10]])
    assert whole.matrix() is kept


def test_pair_evidence_from_counters_equals_brute_force() -> None:
    data = random_interactions(n_orders=400, n_items=30, density=0.1, seed=13)
    X = dense_counts(data.baskets)
    U = dense_counts(data.customer_items())
    src, dst = some_pairs(30, 400, seed=5)
    plain = pair_evidence(data, src, dst)
    kept = pair_evidence(
        data,
        src,
        dst,
        orders=PairCounter(data.baskets, full_share=0.0),
        customers=PairCounter(data.customer_items(), full_share=0.0),
    )
    np.testing.assert_array_equal(kept["co_count"], X[src, dst])
    np.testing.assert_array_equal(kept["customers"], U[src, dst])
    assert plain.keys() == kept.keys()
    for name in plain:
        np.testing.assert_array_equal(plain[name], kept[name])
        assert plain[name].dtype == kept[name].dtype


def test_pair_evidence_asks_once_when_rows_are_customers() -> None:
    data = random_interactions(n_orders=300, n_items=25, density=0.12, seed=17)
    U = data.customer_items()
    rows = Interactions(U, np.arange(U.shape[0], dtype=np.int64), U.shape[0])
    counter = PairCounter(U)
    asked: list[int] = []

    def counting(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        asked.append(len(src))
        return counter(src, dst)

    src, dst = some_pairs(25, 300, seed=6)
    ev = pair_evidence(rows, src, dst, orders=counting, customers=counting)
    assert len(asked) == 1
    np.testing.assert_array_equal(ev["customers"], dense_counts(U)[src, dst])
    np.testing.assert_array_equal(ev["customers"], pair_evidence(rows, src, dst)["customers"])


@pytest.mark.parametrize("seed", range(6))
def test_top_counts_per_row_equals_topk_rows(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    # few distinct values: many ties, broken by the smaller column
    D = rng.integers(-1, 4, size=(n, n)) * (rng.random((n, n)) < 0.4)
    D[0] = 0  # an empty row
    D[1, 1] = 9  # a large diagonal entry, never proposed
    S = shuffled_rows(sp.csr_matrix(D.astype(np.int32)), seed)
    S.data[:3] = 0  # explicit zeros are never proposed either
    rows = np.concatenate([np.arange(n), rng.integers(0, n, 12)]).astype(np.int64)
    monkeypatch.setattr(similarity, "TOP_BLOCK", int(rng.integers(1, 40)))
    for k in (1, 3, 8, 40):
        want = topk_rows(S, rows, k)
        got = top_counts_per_row(S, rows, k)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.scores, want.scores)
        assert got.scores.dtype == want.scores.dtype
    F = S.astype(np.float64)  # not integers: topk_rows itself
    np.testing.assert_array_equal(
        top_counts_per_row(F, rows, 5).indices, topk_rows(F, rows, 5).indices
    )
    assert top_counts_per_row(S, rows[:0], 5).indices.shape == (0, 5)


def test_counting_leaves_an_unsorted_matrix_as_it_was() -> None:
    data = random_interactions(n_orders=120, n_items=20, density=0.2, seed=21)
    M = shuffled_rows(data.baskets, seed=3)
    indices, indptr = M.indices.copy(), M.indptr.copy()
    src, dst = some_pairs(20, 100, seed=8)
    want = dense_counts(data.baskets)
    np.testing.assert_array_equal(pair_counts(M, src, dst), want[src, dst])
    np.testing.assert_array_equal(cooccurrence_counts(M).toarray(), want)
    np.testing.assert_array_equal(M.indices, indices)
    np.testing.assert_array_equal(M.indptr, indptr)


def test_counts_too_large_for_one_key_are_ranked_by_topk_rows() -> None:
    S = sp.csr_matrix(np.array([[0, 2**62, 5], [7, 0, 2**62]], dtype=np.int64))
    got = top_counts_per_row(S, np.array([0, 1]), 2)
    want = topk_rows(S, np.array([0, 1]), 2)
    np.testing.assert_array_equal(got.indices, want.indices)
    assert got.indices.tolist() == [[1, 2], [2, 0]]
