"""Strategy wrappers: use a strategy only where it helps, or for another question."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender, TopK, UserRecommender


class ColdOnly(ItemRecommender):
    """Answer only for items with at most ``max_sales`` training orders; empty rows otherwise.

    Put first in a blend, it lets a content-aware model (the neural strategy) serve new and
    rarely sold products while co-purchase counts keep the well-sold ones.

    Parameters
    ----------
    strategy
        The wrapped strategy (fitted by this wrapper's ``fit``).
    max_sales
        Items sold in at most this many orders count as cold.
    """

    def __init__(self, strategy: ItemRecommender, max_sales: int = 2) -> None:
        self.strategy = strategy
        self.max_sales = max_sales

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.strategy.name

    def fit(self, data: Interactions) -> Self:
        self.strategy.fit(data)
        self.sales_: npt.NDArray[np.int64] = np.asarray(data.baskets.getnnz(axis=0), dtype=np.int64)
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        q = np.asarray(items, dtype=np.int64)
        out = TopK(np.full((len(q), k), -1, dtype=np.int64), np.zeros((len(q), k), np.float32))
        cold = np.flatnonzero(self.sales_[q] <= self.max_sales)
        if len(cold):
            part = self.strategy.similar_items(q[cold], k)
            out.indices[cold] = part.indices
            out.scores[cold] = part.scores
        return out

    def recommend_basket(self, basket: npt.ArrayLike, k: int) -> TopK:
        items = np.asarray(basket, dtype=np.int64)
        if len(items) and (self.sales_[items] <= self.max_sales).all():
            return self.strategy.recommend_basket(items, k)
        return TopK(np.full((1, k), -1, dtype=np.int64), np.zeros((1, k), np.float32))


class BasketAsCustomer(UserRecommender):
    """ "Recommended for you" from an item strategy: a customer's whole history is one basket,
    completed by the strategy's ``recommend_basket``.

    The item strategy is fitted on the customers' histories as baskets (what one customer
    buys over time goes together, as in PERSONAL-MS where an order is a single rating), and
    asked for each customer's items at once.
    """

    def __init__(self, strategy: ItemRecommender) -> None:
        self.strategy = strategy

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.strategy.name

    def fit(self, data: Interactions) -> Self:
        self.history_: sp.csr_matrix = data.customer_items()
        n = self.history_.shape[0]
        baskets = Interactions(
            self.history_, np.arange(n, dtype=np.int64), n, data.content, dict(data.extra)
        )
        self.strategy.fit(baskets)
        return self

    def recommend(self, customers: npt.ArrayLike, k: int, exclude_seen: bool = True) -> TopK:
        q = np.asarray(customers, dtype=np.int64)
        out = TopK(np.full((len(q), k), -1, dtype=np.int64), np.zeros((len(q), k), np.float32))
        H = self.history_
        for row, c in enumerate(q.tolist()):
            basket = H.indices[H.indptr[c] : H.indptr[c + 1]]
            if len(basket) == 0:
                continue
            # recommend_basket never returns the basket's own items: seen items stay out.
            top = self.strategy.recommend_basket(basket, k)
            out.indices[row], out.scores[row] = top.indices[0], top.scores[0]
        return out
