"""Offline metrics on held-out orders: a strategy that knows the structure scores above one
that does not, and the numbers are deterministic."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crosssell.engine.base import Interactions
from crosssell.engine.cooccurrence import CoCount
from crosssell.engine.evaluation.holdout import holdout_metrics
from crosssell.engine.popularity import Popularity


def pairs_shop(n_orders: int = 2000, n_items: int = 40) -> Interactions:
    """Items come in pairs (0-1, 2-3, ...); a popular staple (item 0) is in many orders."""
    rng = np.random.default_rng(0)
    rows, cols = [], []
    for o in range(n_orders):
        a = int(rng.integers(1, n_items // 2)) * 2
        basket = {a, a + 1} | ({0} if rng.random() < 0.3 else set())
        rows += [o] * len(basket)
        cols += sorted(basket)
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_orders, n_items))
    return Interactions.from_baskets(X)


def test_cocount_beats_popularity_on_held_out_orders() -> None:
    data = pairs_shop()
    ours = holdout_metrics(data, CoCount)
    floor = holdout_metrics(data, Popularity)
    assert ours["queries"] == floor["queries"] > 100
    # the staple (item 0) goes with every pair, so its own queries can miss: HR below 1
    assert ours["hr@10"] > 0.8 and ours["ndcg@10"] > floor["ndcg@10"] + 0.2
    assert holdout_metrics(data, CoCount) == ours  # seeded


def test_no_order_to_hold_out_gives_no_metrics() -> None:
    data = Interactions.from_baskets(sp.csr_matrix(np.ones((1, 3))))
    assert holdout_metrics(data, CoCount, fraction=0.0) == {}
