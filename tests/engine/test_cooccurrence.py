"""CoCount: plain counts, and the popularity prior that breaks their ties."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crosssell.engine.base import Interactions
from crosssell.engine.cooccurrence import CoCount, cooccurrence


def _data() -> Interactions:
    # item 0 was bought once with 1 and once with 2; item 2 sells far more than item 1
    baskets = [[0, 1], [0, 2], [2], [2], [2], [1, 3], [3, 2]]
    rows = np.repeat(np.arange(len(baskets)), [len(b) for b in baskets])
    X = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(baskets))), shape=(7, 4))
    return Interactions.from_baskets(X)


def test_cooccurrence_counts_orders_holding_both() -> None:
    C = cooccurrence(_data().baskets).toarray()
    assert C[0, 1] == C[1, 0] == 1 and C[2, 2] == 5 and C[0, 3] == 0


def test_plain_count_ties_break_by_index_and_the_prior_by_popularity() -> None:
    data = _data()
    assert CoCount().fit(data).similar_items([0], 2).row(0) == [1, 2]
    assert CoCount(prior=5.0).fit(data).similar_items([0], 2).row(0) == [2, 1]
    # the prior never invents a companion: item 3 was never bought with item 0
    assert 3 not in CoCount(prior=1000.0).fit(data).similar_items([0], 3).row(0)


def test_min_count_and_max_neighbours() -> None:
    data = _data()
    assert CoCount(min_count=2).fit(data).similar_items([0], 3).row(0) == []
    assert len(CoCount(max_neighbours=1).fit(data).similar_items([2], 3).row(0)) == 1
