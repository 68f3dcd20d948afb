"""PERSONAL-MS: "recommended for you" as in the Microsoft Recommenders MovieLens benchmark."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import IntArray, Interactions, UserRecommender
from crosssell.engine.evaluation import metrics
from crosssell.engine.evaluation.data import PurchaseLog

K = 10
TRAIN_RATIO = 0.75
SEED = 42


@dataclass(frozen=True)
class PersonalSplit:
    """A PERSONAL-MS split: training interactions and each test customer's held-out items."""

    train: Interactions
    customers: list[str]
    items: list[str]
    test: sp.csr_matrix  # customers x items, binary

    @property
    def test_customers(self) -> IntArray:
        return np.flatnonzero(np.diff(self.test.indptr) > 0).astype(np.int64)


def stratified_train_mask(
    product_ids: npt.ArrayLike, ratio: float = TRAIN_RATIO, seed: int = SEED
) -> npt.NDArray[np.bool_]:
    """Per row, ``True`` for training: recommenders' ``python_stratified_split`` by item.

    ``numpy.random.seed(seed)``; a random number per row; rows sorted by (item, random); the
    first ``round(ratio * count)`` rows of each item (round half to even) are training.
    """
    prod = np.asarray(product_ids)
    np.random.seed(seed)
    rnd = np.random.rand(len(prod))
    _, item = np.unique(prod, return_inverse=True)
    order = np.lexsort((rnd, item))
    sorted_item = item[order]
    counts = np.bincount(item)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.arange(len(prod)) - starts[sorted_item] + 1
    keep_sorted = rank <= np.round(ratio * counts[sorted_item])
    mask = np.zeros(len(prod), dtype=bool)
    mask[order[keep_sorted]] = True
    return mask


def personal_split(log: PurchaseLog) -> PersonalSplit:
    """Build the PERSONAL-MS split (every row is one interaction, whatever its quantity)."""
    if (log.customer_ids == "").any():
        raise ValueError("PERSONAL-MS needs a customer_id on every purchase")
    train_mask = stratified_train_mask(log.product_ids)
    cust_names, cust = np.unique(log.customer_ids, return_inverse=True)
    item_names, item = np.unique(log.product_ids, return_inverse=True)
    n_c, n_i = len(cust_names), len(item_names)
    # one training "order" per training order id; customers by index
    tr = np.flatnonzero(train_mask)
    orders, row = np.unique(log.order_ids[tr], return_inverse=True)
    X = sp.coo_matrix(
        (np.ones(len(tr), dtype=np.float32), (row, item[tr])), shape=(len(orders), n_i)
    ).tocsr()
    X.sum_duplicates()
    X.data[:] = 1.0
    order_customer = np.zeros(len(orders), dtype=np.int64)
    order_customer[row] = cust[tr]
    train = Interactions(X, order_customer, n_c, None)
    te = np.flatnonzero(~train_mask)
    T = sp.coo_matrix(
        (np.ones(len(te), dtype=np.float32), (cust[te], item[te])), shape=(n_c, n_i)
    ).tocsr()
    T.sum_duplicates()
    T.data[:] = 1.0
    return PersonalSplit(train, [str(c) for c in cust_names], [str(i) for i in item_names], T)


def score_personal(split: PersonalSplit, lists: IntArray, customers: IntArray) -> dict[str, float]:
    """precision@10, recall@10, NDCG@10 and MAP of per-customer lists (mean over test users)."""
    T = split.test
    n_items = T.shape[1]
    coo = T.tocoo()
    keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    hits = np.isin(customers[:, None] * n_items + lists, keys) & (lists >= 0)
    n_rel = np.diff(T.indptr)[customers].astype(np.int64)
    return {
        "precision@10": float(metrics.precision(hits).mean()),
        "recall@10": float(metrics.recall(hits, n_rel).mean()),
        "ndcg@10": float(metrics.ndcg(hits, n_rel).mean()),
        "map": float(metrics.average_precision(hits, n_rel).mean()),
        "hr@10": float(metrics.hit_rate(hits).mean()),
        "queries": len(customers),
    }


def evaluate_personal(strategy: UserRecommender, split: PersonalSplit) -> dict[str, float]:
    """Fit ``strategy`` on the training part and score its top 10 (seen items removed)."""
    t0 = time.perf_counter()
    strategy.fit(split.train)
    users = split.test_customers
    lists = strategy.recommend(users, K, exclude_seen=True).indices
    seconds = time.perf_counter() - t0
    return {**score_personal(split, lists, users), "fit_seconds": seconds}


def training_rows(log: PurchaseLog) -> PurchaseLog:
    """The PERSONAL-MS training rows only (file order), to carve a validation split from."""
    keep = stratified_train_mask(log.product_ids)
    return PurchaseLog(
        log.order_ids[keep], log.customer_ids[keep], log.product_ids[keep], log.purchased_at[keep]
    )
