"""Pairs below the privacy threshold, censored inside a fit (issue 18, the side channel)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crosssell.engine.base import Interactions
from crosssell.engine.blend import Blend
from crosssell.engine.cooccurrence import cooccurrence
from crosssell.engine.evidence import MIN_CUSTOMERS_KEY, censor_pairs, privacy_threshold
from crosssell.engine.hybrid import CoCountContent
from tests.engine.conftest import random_interactions


def shop() -> Interactions:
    """Items 0-3. (0, 1): 4 orders of one customer; (0, 2): 3 customers; (2, 3): 2 orders of
    2 customers; item 3 also sells alone."""
    orders = [[0, 1]] * 4 + [[0, 2]] * 3 + [[2, 3]] * 2 + [[3]] * 5
    customers = [0] * 4 + [1, 2, 3] + [4, 5] + list(range(6, 11))
    rows = [r for r, items in enumerate(orders) for _ in items]
    cols = [i for items in orders for i in items]
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(orders), 4))
    return Interactions.from_baskets(X, customers)


def test_censor_pairs_drops_the_pairs_of_too_few_customers_only() -> None:
    data = shop()
    C = cooccurrence(data.baskets)
    kept = censor_pairs(C, data, 3).toarray()
    # (0, 1) has 4 orders but one customer; (2, 3) two customers: both go, both ways
    assert kept[0, 1] == kept[1, 0] == kept[2, 3] == kept[3, 2] == 0
    assert kept[0, 2] == kept[2, 0] == 3  # three customers stay
    np.testing.assert_array_equal(np.diag(kept), np.diag(C.toarray()))  # own counts stay
    np.testing.assert_array_equal(censor_pairs(C, data, 1).toarray(), C.toarray())


def test_the_default_strategy_scores_a_private_pair_as_never_bought() -> None:
    data = random_interactions(n_orders=300, n_items=20, seed=5)
    plain = CoCountContent().fit(data)
    data.extra[MIN_CUSTOMERS_KEY] = 3
    private = CoCountContent().fit(data)
    assert privacy_threshold(data) == 3 and private.private_below_ == 3
    C = cooccurrence(data.baskets).toarray()
    U = data.customer_items().toarray()
    people = U.T @ U
    below = (people >= 1) & (people < 3)
    np.fill_diagonal(below, False)
    assert below.any()
    # only the co-count of the pairs below the threshold leaves the score
    diff = plain.scores_.toarray() - private.scores_.toarray()
    np.testing.assert_allclose(diff[below], C[below], rtol=1e-6)
    # a blend of it and the bestsellers is as private as its step
    assert Blend().fit(data).private_below_ == 3
    del data.extra[MIN_CUSTOMERS_KEY]
    assert Blend().fit(data).private_below_ == 0
