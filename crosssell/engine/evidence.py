"""The evidence behind a published pair: co-purchase count, support, confidence, lift, customers.

The services publish ``customers`` with every recommendation and never publish a pair bought
together by fewer distinct customers than the privacy threshold, so the counts are exact (no
sampling, no approximation) and computed for many pairs at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import IntArray, Interactions
from crosssell.engine.similarity import column_counts, pair_counts

#: ``counts(src, dst)``: exact co-counts of many pairs (e.g. a :class:`PairCounter`).
PairCountFn = Callable[[IntArray, IntArray], IntArray]


def pair_evidence(
    data: Interactions,
    src: npt.ArrayLike,
    dst: npt.ArrayLike,
    *,
    orders: PairCountFn | None = None,
    customers: PairCountFn | None = None,
) -> dict[str, npt.NDArray[np.float64] | IntArray]:
    """The evidence behind recommending ``dst`` on ``src``'s page, for many pairs at once.

    Parameters
    ----------
    data
        The interactions the recommendations were computed from.
    src, dst
        Item indices of the pairs (same length).
    orders, customers
        Exact co-counts over ``data.baskets`` and over ``data.customer_items()``, when the
        caller keeps them for several calls (a :class:`~crosssell.engine.similarity.PairCounter`
        computes the whole product once); by default each is counted for these pairs only. The
        same function for both means rows that are customers: it is asked once.

    Returns
    -------
    dict
        ``co_count`` (orders holding both), ``support`` (``co_count / n_orders``),
        ``confidence`` (``co_count / orders holding src``), ``lift`` (``confidence / support of
        dst``; 0 when dst was never bought) and ``customers`` (distinct customers who bought both,
        over their whole history; exact, for the privacy threshold).
    """
    s = np.asarray(src, dtype=np.int64)
    d = np.asarray(dst, dtype=np.int64)
    if s.shape != d.shape or s.ndim != 1:
        raise ValueError("src and dst must be 1-d arrays of the same length")
    n = data.n_items
    if len(s) and (s.min() < 0 or d.min() < 0 or s.max() >= n or d.max() >= n):
        raise IndexError("item index out of range")
    co = orders(s, d) if orders is not None else pair_counts(data.baskets, s, d)
    pop = column_counts(data.baskets)
    n_orders = max(data.n_orders, 1)
    conf = np.zeros(len(s), dtype=np.float64)
    np.divide(co, pop[s], out=conf, where=pop[s] > 0)
    lift = np.zeros(len(s), dtype=np.float64)
    np.divide(conf * n_orders, pop[d], out=lift, where=pop[d] > 0)
    if customers is not None and customers is orders:
        people = co  # rows that are customers (the also-bought kind): the same counts
    elif customers is not None:
        people = customers(s, d)
    else:
        people = pair_counts(data.customer_items(), s, d)
    return {
        "co_count": co,
        "support": co / n_orders,
        "confidence": conf,
        "lift": lift,
        "customers": people,
    }


#: ``Interactions.extra`` key of the privacy threshold a strategy's fit applies (the services
#: set it; a strategy that reads it censors its co-counts, :func:`censor_pairs`).
MIN_CUSTOMERS_KEY = "min_customers"


def privacy_threshold(data: Interactions) -> int:
    """The threshold the services ask a fit to apply (``extra["min_customers"]``; 0: none)."""
    value = data.extra.get(MIN_CUSTOMERS_KEY)
    return int(value) if isinstance(value, int | np.integer) else 0


def censor_pairs(C: sp.csr_matrix, data: Interactions, minimum: int) -> sp.csr_matrix:
    """``C`` (item x item co-counts over orders) without the pairs that 1 to ``minimum - 1``
    distinct customers bought together: for a strategy's fit, as if never bought together.

    A pair counted in fewer than ``minimum`` orders has fewer customers too, so only the
    others are counted again over customers (:func:`pair_counts` of
    ``data.customer_items()``).
    """
    C = C.tocsr(copy=True)
    if minimum <= 1 or C.nnz == 0:
        return C
    rows = np.repeat(np.arange(C.shape[0], dtype=np.int64), np.diff(C.indptr))
    cols = C.indices.astype(np.int64)
    drop = (C.data > 0) & (C.data < minimum)
    ask = np.flatnonzero((C.data >= minimum) & (rows != cols))
    if len(ask):
        people = pair_counts(data.customer_items(), rows[ask], cols[ask])
        drop[ask[(people >= 1) & (people < minimum)]] = True
    drop &= rows != cols  # the diagonal is an item's own count, not a pair
    C.data[drop] = 0
    C.eliminate_zeros()
    return C
