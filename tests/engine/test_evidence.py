"""pair_evidence: exact co-counts, support, confidence, lift and distinct customers."""

from __future__ import annotations

import numpy as np
import pytest

from crosssell.engine.evidence import pair_evidence
from tests.engine.conftest import known_answer_data, random_interactions


def test_pair_evidence_matches_brute_force() -> None:
    data = random_interactions(n_orders=500, n_items=30, seed=31)
    X = data.baskets.toarray().astype(np.float64)
    U = data.customer_items().toarray().astype(np.float64)
    rng = np.random.default_rng(2)
    src = rng.integers(0, 30, 400)
    dst = rng.integers(0, 30, 400)
    ev = pair_evidence(data, src, dst)
    co = (X[:, src] * X[:, dst]).sum(axis=0)
    pop = X.sum(axis=0)
    n = X.shape[0]
    np.testing.assert_array_equal(ev["co_count"], co)
    np.testing.assert_allclose(ev["support"], co / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        conf = np.where(pop[src] > 0, co / pop[src], 0.0)
        lift = np.where(pop[dst] > 0, conf / (pop[dst] / n), 0.0)
    np.testing.assert_allclose(ev["confidence"], conf)
    np.testing.assert_allclose(ev["lift"], lift)
    np.testing.assert_array_equal(ev["customers"], (U[:, src] * U[:, dst]).sum(axis=0))


def test_customers_count_people_not_orders() -> None:
    data = known_answer_data()
    ev = pair_evidence(data, np.array([0, 2, 0]), np.array([1, 3, 7]))
    # (0, 1): 10 orders, but customers 1-3 bought it three times each, customer 4 once
    assert ev["co_count"].tolist() == [10, 8, 0]
    assert ev["customers"].tolist() == [4, 8, 0]
    assert ev["lift"][2] == 0.0
    with pytest.raises(IndexError):
        pair_evidence(data, np.array([0]), np.array([99]))
    with pytest.raises(ValueError):
        pair_evidence(data, np.array([0, 1]), np.array([1]))
