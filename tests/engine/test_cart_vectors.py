"""Cart vectors (crosssell.engine.cart): each product's weighted companions, and a cart's sum."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from crosssell.engine.cart import cart_vectors, score_cart, vector_weights
from crosssell.engine.evaluation.cart import shrunk_conditional, summed_top
from crosssell.engine.similarity import cooccurrence_counts


def baskets(orders: list[list[int]], n_items: int) -> sp.csr_matrix:
    rows = [o for o, basket in enumerate(orders) for _ in basket]
    cols = [i for basket in orders for i in basket]
    return sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(orders), n_items)
    )


#: item 0 with 1 (4 orders), 2 (2 orders), 3 (1 order); 4 bought alone; 5 never.
ORDERS = [[0, 1], [0, 1], [0, 1, 2], [0, 1, 2], [0, 3], [4], [1, 3]]


def test_weights_are_shrunk_conditionals_best_first() -> None:
    C = cooccurrence_counts(baskets(ORDERS, 6))
    v = cart_vectors(C, shrink=2.0, length=10, lift=0.0)
    assert v.items.tolist() == list(range(6))
    dst, w = v.of(0)
    # count(0) = 5 orders: 4 / 7, 2 / 7, 1 / 7
    assert dst.tolist() == [1, 2, 3]
    np.testing.assert_allclose(w, [4 / 7, 2 / 7, 1 / 7], rtol=1e-6)
    assert w.dtype == np.float32
    assert len(v.of(4)[0]) == 0 and len(v.of(5)[0]) == 0  # nothing bought with them
    assert 4 not in v.parts() and set(v.parts()) == {0, 1, 2, 3}


def test_length_keeps_the_best_and_ties_go_to_the_smaller_index() -> None:
    # 0 bought with 3, 2 and 1 once each: equal weights, the smaller index first
    C = cooccurrence_counts(baskets([[0, 3], [0, 2], [0, 1]], 4))
    v = cart_vectors(C, shrink=0.0, length=2, lift=0.0)
    assert v.of(0)[0].tolist() == [1, 2]


def test_lift_moves_the_weight_away_from_bestsellers() -> None:
    # 0 goes with the bestseller 1 in 3 of its 4 orders, with the rare 2 in 2
    orders = [[0, 1], [0, 1], [0, 1, 2], [0, 2], *([[1]] * 20), [2]]
    C = cooccurrence_counts(baskets(orders, 3))
    assert cart_vectors(C, shrink=0.0, lift=0.0).of(0)[0].tolist() == [1, 2]
    lifted = cart_vectors(C, shrink=0.0, lift=1.0)
    assert lifted.of(0)[0].tolist() == [2, 1]
    # count(1) = 23, count(2) = 3: 3 / 4 / 23 and 2 / 4 / 3
    np.testing.assert_allclose(lifted.of(0)[1], [2 / 4 / 3, 3 / 4 / 23], rtol=1e-6)
    np.testing.assert_allclose(
        vector_weights([3, 2], 4, 0.0, [23, 3], 1.0), [3 / 4 / 23, 2 / 4 / 3], rtol=1e-6
    )


def test_the_privacy_threshold_counts_customers_not_orders() -> None:
    # 0 and 1 in 4 orders of one customer; 0 and 2 in 2 orders of 2 customers; 0 and 3 once
    # each by 3 customers
    X = baskets([[0, 1], [0, 1], [0, 1], [0, 1], [0, 2], [0, 2], [0, 3], [0, 3], [0, 3]], 4)
    customer_of_order = [0, 0, 0, 0, 1, 2, 3, 4, 5]
    owner = sp.csr_matrix(
        (np.ones(9, dtype=np.float32), (customer_of_order, np.arange(9))), shape=(6, 9)
    )
    U = cooccurrence_counts(sp.csr_matrix((owner @ X) > 0, dtype=np.float32))
    C = cooccurrence_counts(X)
    v = cart_vectors(C, U, shrink=0.0, lift=0.0, min_customers=3)
    assert v.of(0)[0].tolist() == [3]  # 1: one customer, 2: two
    assert v.customers[v.indptr[0] : v.indptr[1]].tolist() == [3]
    open_ = cart_vectors(C, U, shrink=0.0, lift=0.0, min_customers=0)
    assert open_.of(0)[0].tolist() == [1, 3, 2]
    assert open_.customers[: open_.indptr[1]].tolist() == [1, 3, 2]
    with pytest.raises(ValueError, match="customers"):
        cart_vectors(C, None, min_customers=3)


def test_a_subset_of_items_gets_the_same_vectors() -> None:
    rng = np.random.default_rng(0)
    orders = [rng.choice(40, size=rng.integers(2, 6), replace=False).tolist() for _ in range(400)]
    C = cooccurrence_counts(baskets(orders, 40))
    whole = cart_vectors(C, C, shrink=5.0, length=7, lift=0.2, min_customers=3)
    part = cart_vectors(C, C, items=[3, 17, 39], shrink=5.0, length=7, lift=0.2, min_customers=3)
    assert part.items.tolist() == [3, 17, 39]
    for i, q in enumerate([3, 17, 39]):
        np.testing.assert_array_equal(part.of(i)[0], whole.of(q)[0])
        np.testing.assert_array_equal(part.of(i)[1], whole.of(q)[1])
    # a matrix holding only those rows gives the same, with the items' counts handed over
    X = baskets(orders, 40)
    rows = np.array([3, 17, 39])
    P = sp.lil_matrix(C.shape, dtype=C.dtype)
    P[rows] = C[rows]
    counts = np.asarray(X.sum(0)).ravel()
    partial = cart_vectors(
        sp.csr_matrix(P), sp.csr_matrix(P), items=rows, shrink=5.0, length=7, lift=0.2,
        min_customers=3, item_counts=counts,
    )  # fmt: skip
    np.testing.assert_array_equal(partial.dst, part.dst)
    np.testing.assert_array_equal(partial.weight, part.weight)
    with pytest.raises(ValueError, match="ascending"):
        cart_vectors(C, items=[5, 3])
    with pytest.raises(ValueError, match="one count per item"):
        cart_vectors(C, item_counts=[1, 2])


def test_bad_parameters_are_refused() -> None:
    C = cooccurrence_counts(baskets(ORDERS, 6))
    for kwargs in ({"shrink": -1.0}, {"lift": -0.5}, {"length": 0}):
        with pytest.raises(ValueError):
            cart_vectors(C, **kwargs)


def test_score_cart_sums_removes_the_cart_and_breaks_ties_by_id() -> None:
    parts = [
        (np.array([5, 7, 2]), np.array([0.5, 0.25, 0.125], dtype=np.float32)),
        (np.array([7, 9, 3, 5]), np.array([0.25, 0.5, 0.5, 0.25], dtype=np.float32)),
    ]
    ids, scores = score_cart(parts, cart=[2, 3])
    # 5: 0.75, 7: 0.5, 9: 0.5 (7 first: smaller), 2 and 3 are in the cart
    assert ids.tolist() == [5, 7, 9]
    np.testing.assert_allclose(scores, [0.75, 0.5, 0.5])
    assert score_cart(parts, cart=[2, 3], top=1)[0].tolist() == [5]
    assert score_cart([], cart=[1])[0].tolist() == []


def test_untruncated_vectors_sum_to_the_shrunk_conditional() -> None:
    rng = np.random.default_rng(1)
    orders = [rng.choice(30, size=rng.integers(2, 7), replace=False).tolist() for _ in range(300)]
    X = baskets(orders, 30)
    C = cooccurrence_counts(X)
    parts = cart_vectors(C, shrink=20.0, length=30, lift=0.0).parts()
    pop = np.asarray(X.sum(0)).ravel()
    M = shrunk_conditional(C.astype(np.float32).tocsr(), pop, 20.0)
    M.setdiag(0)
    M.eliminate_zeros()
    for cart in ([0, 4], [3, 8, 21], [1, 2, 5, 9, 11]):
        ids, scores = score_cart([parts[q] for q in sorted(cart) if q in parts], cart)
        dense = np.asarray(M[cart].sum(0)).ravel()
        dense[cart] = 0
        np.testing.assert_allclose(scores, dense[ids], rtol=1e-5)
        assert set(ids.tolist()) == set(np.flatnonzero(dense).tolist())
        (top,) = summed_top(M, [np.asarray(cart)], top=5)
        assert sorted(dense[top].tolist()) == pytest.approx(sorted(scores[:5].tolist()))
