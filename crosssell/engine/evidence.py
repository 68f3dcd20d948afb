"""The evidence behind a published pair: co-purchase count, support, confidence, lift, customers.

The services publish ``customers`` with every recommendation and never publish a pair bought
together by fewer distinct customers than the privacy threshold, so the counts are exact (no
sampling, no approximation) and computed for many pairs at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crosssell.engine.base import IntArray, Interactions
from crosssell.engine.similarity import column_counts, pair_counts


def pair_evidence(
    data: Interactions, src: npt.ArrayLike, dst: npt.ArrayLike
) -> dict[str, npt.NDArray[np.float64] | IntArray]:
    """The evidence behind recommending ``dst`` on ``src``'s page, for many pairs at once.

    Parameters
    ----------
    data
        The interactions the recommendations were computed from.
    src, dst
        Item indices of the pairs (same length).

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
    co = pair_counts(data.baskets, s, d)
    pop = column_counts(data.baskets)
    n_orders = max(data.n_orders, 1)
    conf = np.zeros(len(s), dtype=np.float64)
    np.divide(co, pop[s], out=conf, where=pop[s] > 0)
    lift = np.zeros(len(s), dtype=np.float64)
    np.divide(conf * n_orders, pop[d], out=lift, where=pop[d] > 0)
    customers = pair_counts(data.customer_items(), s, d)
    return {
        "co_count": co,
        "support": co / n_orders,
        "confidence": conf,
        "lift": lift,
        "customers": customers,
    }
