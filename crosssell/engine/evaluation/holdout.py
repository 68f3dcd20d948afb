"""Offline metrics of a strategy on a shop's own orders, as each build and retraining records.

A random share of the orders (seeded) is held out; a fresh copy of the strategy is fitted on the
rest and asked, as in FBT-v1, for the 10 companions of each held-out product that sold in the
fitted part; the rest of that order is what counts as relevant. The same split is the
validation split of the build's tuning (:mod:`crosssell.engine.tuning`): :func:`holdout_split`
draws it once for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender
from crosssell.engine.evaluation.metrics import hit_rate, ndcg, recall_capped

K = 10


@dataclass(frozen=True)
class HoldoutSplit:
    """The shop's orders split into a fitted part and held-out orders.

    Attributes
    ----------
    data
        Every order of the shop.
    train
        The orders not held out (the fitted part), every item keeping its column.
    held_out
        Per order of ``data``, whether it is held out.
    queries
        ``(held-out order, product)`` pairs of the held-out orders with at least 2 products,
        the product sold in ``train``: at most ``max_queries``, sampled with the split's seed.
    """

    data: Interactions
    train: Interactions
    held_out: npt.NDArray[np.bool_]
    queries: list[tuple[int, int]]


def holdout_split(
    data: Interactions,
    fraction: float = 0.1,
    random_state: int = 42,
    max_queries: int = 20_000,
) -> HoldoutSplit | None:
    """Hold out a random ``fraction`` of the orders (``None`` when none or all would be).

    Parameters are :func:`holdout_metrics`'s.
    """
    X = data.baskets
    rng = np.random.default_rng(random_state)
    test = rng.random(data.n_orders) < fraction
    if not test.any() or test.all():
        return None
    train_rows = np.flatnonzero(~test)
    train = Interactions(
        sp.csr_matrix(X[train_rows]),
        data.customers[train_rows],
        data.n_customers,
        data.content,
        dict(data.extra),
    )
    sold = np.asarray(train.baskets.getnnz(axis=0) > 0)
    queries: list[tuple[int, int]] = []  # (held-out order, product)
    for row in np.flatnonzero(test).tolist():
        items = X.indices[X.indptr[row] : X.indptr[row + 1]]
        if len(items) >= 2:
            queries += [(row, int(q)) for q in items if sold[q]]
    if len(queries) > max_queries:
        pick = rng.choice(len(queries), size=max_queries, replace=False)
        queries = [queries[i] for i in np.sort(pick)]
    return HoldoutSplit(data, train, test, queries)


def holdout_metrics(
    data: Interactions,
    make: Callable[[], ItemRecommender],
    fraction: float = 0.1,
    random_state: int = 42,
    max_queries: int = 20_000,
    *,
    split: HoldoutSplit | None = None,
    fitted: ItemRecommender | None = None,
) -> dict[str, float]:
    """HR@10, Recall@10 and NDCG@10 of ``make()`` on held-out orders of ``data``.

    Parameters
    ----------
    data
        Every order of the shop.
    make
        Builds an unfitted strategy (a fresh one: the served model is fitted on all orders).
    fraction
        The share of orders held out.
    random_state
        Seed of the order split and of the query sample.
    max_queries
        At most this many (order, product) queries are asked, sampled with the same seed.
    split
        The split, when the caller drew it already (:func:`holdout_split`; the three
        parameters above are then its own).
    fitted
        The strategy already fitted on ``split.train`` (``make`` is then not called).

    Returns
    -------
    dict
        ``{"hr@10", "recall@10", "ndcg@10", "queries"}``; empty when no order can be held out.
    """
    if split is None:
        split = holdout_split(data, fraction, random_state, max_queries)
    if split is None or not split.queries:
        return {}
    X = data.baskets
    queries = split.queries
    model = fitted if fitted is not None else make().fit(split.train)
    products = np.unique([q for _, q in queries])
    top = model.similar_items(products, K)
    position = {int(p): i for i, p in enumerate(products.tolist())}
    hits = np.zeros((len(queries), K), dtype=bool)
    n_relevant = np.zeros(len(queries), dtype=np.int64)
    for n, (row, q) in enumerate(queries):
        relevant = set(X.indices[X.indptr[row] : X.indptr[row + 1]].tolist()) - {q}
        hits[n] = [int(j) in relevant for j in top.indices[position[q]]]
        n_relevant[n] = len(relevant)
    return {
        "hr@10": round(float(hit_rate(hits).mean()), 4),
        "recall@10": round(float(recall_capped(hits, n_relevant).mean()), 4),
        "ndcg@10": round(float(ndcg(hits, n_relevant).mean()), 4),
        "queries": float(len(queries)),
    }
