"""FBT-v1: "frequently bought together" on a product page (PROTOCOL.md), with its cold slice."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import IntArray, Interactions, ItemRecommender
from crosssell.engine.evaluation import metrics
from crosssell.engine.evaluation.data import Catalog, PurchaseLog

K = 10
TEST_FRACTION = 0.2
SEED = 42


@dataclass(frozen=True)
class FBTSplit:
    """One FBT-v1 split: the training interactions and the queries.

    Attributes
    ----------
    train
        Training interactions over ``items`` (hidden items keep their column, with no lines).
    items
        Product id (string) of each item index, sorted as strings.
    query_items, query_orders
        One entry per query: the item ``q`` and the test order it comes from.
    relevant
        ``n_test_orders x n_items`` binary matrix of the test baskets' known items.
    n_relevant
        Per query: the number of distinct products of its basket other than ``q``.
    hidden
        Item indices whose training lines were removed (the cold slice), else empty.
    """

    train: Interactions
    items: list[str]
    query_items: IntArray
    query_orders: IntArray
    relevant: sp.csr_matrix
    n_relevant: IntArray
    hidden: IntArray
    cold: bool


def _orders_in_first_appearance(log: PurchaseLog) -> tuple[IntArray, IntArray, list[str]]:
    """Per line, the order's position by first appearance, and each order's first index."""
    uniq, first, inverse = np.unique(log.order_ids, return_index=True, return_inverse=True)
    by_appearance = np.argsort(first, kind="stable")
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[by_appearance] = np.arange(len(uniq))
    return rank[inverse], first[by_appearance], [str(u) for u in uniq[by_appearance]]


def split_orders(log: PurchaseLog, test_fraction: float = TEST_FRACTION) -> npt.NDArray[np.bool_]:
    """Per order (by first appearance), ``True`` when it is a test order.

    Temporal (last orders by first ``purchased_at``) when every order has one, else random
    with ``numpy.random.default_rng(42).permutation``.
    """
    line_order, _, names = _orders_in_first_appearance(log)
    n = len(names)
    cut = int(n * (1 - test_fraction))
    is_test = np.zeros(n, dtype=bool)
    stamps = log.purchased_at
    has = stamps != ""
    if has.all():
        # first purchased_at of each order (ISO 8601 strings sort as times)
        first = np.full(n, "", dtype=stamps.dtype)
        order = np.lexsort((stamps, line_order))
        starts = np.flatnonzero(np.r_[True, np.diff(line_order[order]) != 0])
        first[line_order[order][starts]] = stamps[order][starts]
        ranked = np.argsort(first, kind="stable")
        is_test[ranked[cut:]] = True
    else:
        perm = np.random.default_rng(SEED).permutation(n)
        is_test[perm[cut:]] = True
    return is_test


def fbt_split(log: PurchaseLog, catalog: Catalog | None = None, cold: bool = False) -> FBTSplit:
    """Build the FBT-v1 split of a purchase log (the cold slice when ``cold``)."""
    line_order, _, _ = _orders_in_first_appearance(log)
    is_test_order = split_orders(log)
    test_line = is_test_order[line_order]
    tr_prod = log.product_ids[~test_line]
    train_products = np.unique(tr_prod)  # sorted as strings
    hidden_ids: npt.NDArray[np.str_] = np.array([], dtype=str)
    if cold:
        pick = np.random.default_rng(SEED).choice(
            len(train_products), size=len(train_products) // 10, replace=False
        )
        hidden_ids = train_products[pick]
    items = train_products
    n_items = len(items)

    # training: distinct (order, product) lines, hidden products removed
    tr_orders = line_order[~test_line]
    tr_cust = log.customer_ids[~test_line]
    tr_item = np.searchsorted(items, tr_prod)
    keep = ~np.isin(tr_prod, hidden_ids) if cold else np.ones(len(tr_prod), dtype=bool)
    tr_orders, tr_item, tr_cust = tr_orders[keep], tr_item[keep], tr_cust[keep]
    # distinct lines, first occurrence, in file order: the peers' ties depend on this order
    _, first_occ = np.unique(tr_orders * max(n_items, 1) + tr_item, return_index=True)
    first_occ = np.sort(first_occ)
    tr_orders, tr_item, tr_cust = tr_orders[first_occ], tr_item[first_occ], tr_cust[first_occ]
    uo, row = np.unique(tr_orders, return_inverse=True)
    X = sp.coo_matrix(
        (np.ones(len(row), dtype=np.float32), (row, tr_item)), shape=(len(uo), n_items)
    ).tocsr()
    # customers: one per known customer id; guests get an index each
    first_line = np.zeros(len(uo), dtype=np.int64)
    first_line[row[::-1]] = np.arange(len(row))[::-1]
    cust_ids = tr_cust[first_line]
    known = cust_ids != ""
    cust = np.empty(len(uo), dtype=np.int64)
    uc, cinv = np.unique(cust_ids[known], return_inverse=True)
    cust[known] = cinv
    cust[~known] = len(uc) + np.arange(int((~known).sum()))
    content = catalog.content_for(items) if catalog is not None else None
    train = Interactions(X, cust, len(uc) + int((~known).sum()), content)

    # test baskets: distinct products per test order
    te_orders = line_order[test_line]
    te_prod = log.product_ids[test_line]
    codes, code = np.unique(te_prod, return_inverse=True)
    keys = np.unique(te_orders.astype(np.int64) * len(codes) + code)
    t_order = keys // max(len(codes), 1)
    t_prod = codes[keys % max(len(codes), 1)]
    pos = np.searchsorted(items, t_prod).clip(max=max(n_items - 1, 0))
    known_item = (items[pos] == t_prod) if n_items else np.zeros(len(t_prod), dtype=bool)
    t_item = np.where(known_item, pos, -1)
    uto, t_row = np.unique(t_order, return_inverse=True)
    size = np.bincount(t_row, minlength=len(uto))
    R = sp.csr_matrix(
        (
            np.ones(int(known_item.sum()), dtype=np.float32),
            (t_row[known_item], t_item[known_item]),
        ),
        shape=(len(uto), n_items),
    )
    is_query = known_item & (size[t_row] >= 2)
    hidden_idx = np.searchsorted(items, hidden_ids).astype(np.int64)
    if cold:
        is_query &= np.isin(t_item, hidden_idx)
    return FBTSplit(
        train=train,
        items=[str(s) for s in items],
        query_items=t_item[is_query].astype(np.int64),
        query_orders=t_row[is_query].astype(np.int64),
        relevant=R,
        n_relevant=(size[t_row[is_query]] - 1).astype(np.int64),
        hidden=hidden_idx,
        cold=cold,
    )


def popularity_order(data: Interactions) -> IntArray:
    """Items by training order count, most popular first (ties: smaller index)."""
    pop = np.asarray(data.baskets.sum(axis=0)).ravel()
    return np.argsort(-pop, kind="stable").astype(np.int64)


def filled_lists(
    strategy: ItemRecommender, items: IntArray, pop_order: IntArray, k: int = K
) -> IntArray:
    """The strategy's ``k`` companions of each item, completed with popularity.

    Never the item itself, never a duplicate (as every FBT-v1 method does).
    """
    got = strategy.similar_items(items, k).indices if len(items) else np.empty((0, k), np.int64)
    head = pop_order[: 2 * k + 1]
    out = np.full((len(items), k), -1, dtype=np.int64)
    for pos, q in enumerate(items.tolist()):
        row = got[pos]
        cand = np.concatenate([row[(row >= 0) & (row != q)], head[head != q]])
        _, first = np.unique(cand, return_index=True)
        row = cand[np.sort(first)][:k]
        out[pos, : len(row)] = row
    return out


def score_lists(split: FBTSplit, lists: IntArray, uniq_items: IntArray) -> dict[str, float]:
    """HR@10, Recall@10 and NDCG@10 of per-item lists over the split's queries."""
    if len(split.query_items) == 0:
        nan = float("nan")
        return {"hr@10": nan, "recall@10": nan, "ndcg@10": nan, "queries": 0}
    rows = np.searchsorted(uniq_items, split.query_items)
    recs = lists[rows]
    n_items = split.relevant.shape[1]
    R = split.relevant.tocoo()
    keys = np.sort(R.row.astype(np.int64) * n_items + R.col)
    qkeys = split.query_orders[:, None] * n_items + recs
    hits = np.isin(qkeys, keys) & (recs >= 0)
    return {
        "hr@10": float(metrics.hit_rate(hits).mean()),
        "recall@10": float(metrics.recall_capped(hits, split.n_relevant).mean()),
        "ndcg@10": float(metrics.ndcg(hits, split.n_relevant).mean()),
        "queries": len(split.query_items),
    }


def evaluate_fbt(strategy: ItemRecommender, split: FBTSplit) -> dict[str, float]:
    """Fit ``strategy`` on the split's training data and score it under FBT-v1.

    Returns
    -------
    dict
        ``hr@10``, ``recall@10``, ``ndcg@10``, ``precision@10``, ``map`` (``nan``: not an FBT-v1
        metric), ``queries`` and ``fit_seconds`` (fit plus computing the lists).
    """
    t0 = time.perf_counter()
    strategy.fit(split.train)
    uniq = np.unique(split.query_items)
    lists = filled_lists(strategy, uniq, popularity_order(split.train))
    seconds = time.perf_counter() - t0
    res = score_lists(split, lists, uniq)
    return {**res, "precision@10": float("nan"), "map": float("nan"), "fit_seconds": seconds}


def training_log(log: PurchaseLog) -> PurchaseLog:
    """The purchase lines of FBT-v1's training orders only, in file order.

    Splitting this log again with :func:`fbt_split` gives a validation split carved from the
    training part: parameters are tuned on it, never on the test orders.
    """
    line_order, _, _ = _orders_in_first_appearance(log)
    keep = ~split_orders(log)[line_order]
    return PurchaseLog(
        log.order_ids[keep], log.customer_ids[keep], log.product_ids[keep], log.purchased_at[keep]
    )
