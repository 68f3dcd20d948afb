"""Wrappers: a strategy for products with few sales only, and an item strategy for customers."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crosssell.engine.base import Interactions
from crosssell.engine.cooccurrence import CoCount
from crosssell.engine.popularity import Popularity
from crosssell.engine.wrappers import BasketAsCustomer, ColdOnly


def data() -> Interactions:
    # items 0-1 and 2-3 go together; item 4 sold once; item 5 never.
    rows = [[0, 1], [0, 1], [0, 1], [2, 3], [2, 3], [4, 0]]
    X = sp.lil_matrix((len(rows), 6))
    for r, items in enumerate(rows):
        for i in items:
            X[r, i] = 1
    return Interactions.from_baskets(X, customers=[0, 0, 1, 1, 2, 2])


def test_cold_only_answers_for_rarely_sold_items_only() -> None:
    model = ColdOnly(Popularity(), max_sales=1).fit(data())
    top = model.similar_items([0, 4, 5], 3)
    assert (top.indices[0] == -1).all()  # item 0 sold 4 times: not cold
    assert (top.indices[1] >= 0).all() and (top.indices[2] >= 0).all()
    assert model.name == "popularity"


def test_basket_as_customer_completes_each_history() -> None:
    model = BasketAsCustomer(CoCount()).fit(data())
    top = model.recommend(np.array([0, 1]), 2)
    # Customer 0 bought 0 and 1 only: never those again; customer 1 bought all of 0-3.
    assert not set(top.indices[0].tolist()) & {0, 1}
    assert not set(top.indices[1].tolist()) & {0, 1, 2, 3}
    assert top.indices[1][0] == 4  # bought with 0 once
