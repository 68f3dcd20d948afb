"""A build's co-counts, computed once for both kinds, give exactly the rows counted pair by pair.

The privacy threshold reads ``customers``, so these compare every column of the rows (and the
counts themselves against a brute-force count), not only their number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from crosssell.engine.base import Interactions, TopK
from crosssell.engine.cooccurrence import CoCount
from crosssell.engine.ranking import (
    CountedCoCount,
    EvidenceCounts,
    also_bought_model,
    compute_rows,
)
from crosssell.services.extract import Extracted
from tests.crosssell.ranking_helpers import Fixed, assert_same_rows


def random_shop(seed: int, n_orders: int, n_items: int, density: float) -> Extracted:
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.random((n_orders, n_items)) < density)
    customers = rng.integers(0, max(1, n_orders // 3), size=n_orders)
    data = Interactions.from_baskets(X, customers)
    return Extracted(data, np.arange(1, n_items + 1, dtype=np.int64) * 10, int(X.nnz))


def brute_force(M: sp.csr_matrix, src: npt.NDArray[Any], dst: npt.NDArray[Any]) -> Any:
    """Rows of ``M`` holding both items of each pair, one pair at a time."""
    D = M.toarray() != 0
    return np.array([int((D[:, s] & D[:, d]).sum()) for s, d in zip(src, dst, strict=True)])


def published(customers: Any, min_customers: int) -> Any:
    """What the rows may say: a count below the privacy threshold is written as 0."""
    return np.where((customers >= 1) & (customers < min_customers), 0, customers)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n_orders=st.integers(1, 40),
    n_items=st.integers(2, 12),
    density=st.floats(0.05, 0.6),
    k=st.integers(1, 4),
    min_customers=st.integers(1, 4),
    some_items=st.booleans(),
)
def test_both_kinds_with_kept_counts_equal_the_pair_by_pair_build(
    seed: int,
    n_orders: int,
    n_items: int,
    density: float,
    k: int,
    min_customers: int,
    some_items: bool,
) -> None:
    ex = random_shop(seed, n_orders, n_items, density)
    rng = np.random.default_rng(seed + 1)
    width = k + 8
    # candidates with padding, the item itself and repeats, as a blend may return them
    top = TopK(
        rng.integers(-1, n_items, size=(n_items, width)).astype(np.int64),
        rng.random((n_items, width)).astype(np.float32),
    )
    items = (
        np.sort(rng.choice(n_items, size=max(1, n_items // 2), replace=False)).astype(np.int64)
        if some_items
        else None
    )
    counts = EvidenceCounts(ex.data)
    got = compute_rows(ex.data, Fixed(top), k, min_customers, items=items, counts=counts)
    want = compute_rows(ex.data, Fixed(top), k, min_customers, items=items)
    assert_same_rows(got, want)
    np.testing.assert_array_equal(
        got.evidence["customers"],
        published(brute_force(ex.data.customer_items(), got.src, got.dst), min_customers),
    )

    data, also = also_bought_model(ex.data, ex.product_ids, counts)
    got = compute_rows(
        data, also, k, min_customers, items=items, counts=counts.over_customers(data)
    )
    plain_data, plain = also_bought_model(ex.data, ex.product_ids)
    assert isinstance(plain, CoCount)
    want = compute_rows(plain_data, plain, k, min_customers, items=items)
    assert_same_rows(got, want)
    np.testing.assert_array_equal(
        got.evidence["customers"],
        published(brute_force(ex.data.customer_items(), got.src, got.dst), min_customers),
    )


def test_the_whole_catalog_uses_one_product_per_matrix() -> None:
    ex = random_shop(3, 300, 25, 0.15)
    counts = EvidenceCounts(ex.data)
    model = CoCount().fit(ex.data)
    rows = compute_rows(ex.data, model, 4, 2, counts=counts)
    kept = counts.customers._matrix
    assert kept is not None and counts.orders._matrix is not None
    data, also = also_bought_model(ex.data, ex.product_ids, counts)
    assert isinstance(also, CountedCoCount) and also.cooc_ is kept  # not counted again
    also_rows = compute_rows(data, also, 4, 2, counts=counts.over_customers(data))
    assert counts.customers._matrix is kept
    assert_same_rows(rows, compute_rows(ex.data, model, 4, 2))
    plain_data, plain = also_bought_model(ex.data, ex.product_ids)
    assert_same_rows(also_rows, compute_rows(plain_data, plain, 4, 2))
    assert (rows.evidence["customers"] >= 2).any()


def test_counted_cocount_ranks_as_cocount() -> None:
    ex = random_shop(8, 200, 30, 0.2)
    items = np.arange(30, dtype=np.int64)
    want = CoCount().fit(ex.data).similar_items(items, 7)
    got = CountedCoCount().fit(ex.data).similar_items(items, 7)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.scores, want.scores)


def test_counts_of_another_data_set_are_refused() -> None:
    ex, other = random_shop(1, 30, 6, 0.3), random_shop(2, 30, 6, 0.3)
    counts = EvidenceCounts(other.data)
    model = CoCount().fit(ex.data)
    with pytest.raises(ValueError):
        compute_rows(ex.data, model, 2, 1, counts=counts)
    with pytest.raises(ValueError):
        also_bought_model(ex.data, ex.product_ids, counts)
    data, _ = also_bought_model(ex.data, ex.product_ids)
    with pytest.raises(ValueError):
        counts.over_customers(data)
