"""Cart vectors: what a cart needs, summed from each of its products' stored companions.

The cart widget ("you may also need") ranks a candidate ``c`` for a cart by

    score(c) = sum over the cart's products q of  w(q, c),
    w(q, c) = count(q, c) / (count(q) + shrink) / count(c) ** lift

``count(q, c)`` is the number of orders holding both products, ``count(q)`` and ``count(c)``
the orders holding each. ``lift = 0`` is the conditional ``P(c | q)`` shrunk toward 0 (a
product bought a handful of times speaks less loudly for the cart than a staple); a positive
``lift`` moves it toward the lift ``P(c | q) / P(c)`` (at 1), so the bestsellers every cart is
"bought with" stop crowding out what this cart needs (CART-v1, BENCHMARKS.md). The sum needs
far more than the 12 companions a product page shows: each product keeps its ``length`` best
terms, a "cart vector", computed by the build from the co-count matrices it already holds and
stored; a cart then costs one read of its products' vectors and a sum.

Interface (the build, the serving code, the CART-v1 evaluation and the per-shop tuning all call
these, so what is measured is what is served):

- :func:`cart_vectors` ``(orders, customers, items=..., shrink=DEFAULT_SHRINK,
  length=DEFAULT_LENGTH, lift=DEFAULT_LIFT, min_customers=0, item_counts=None) ->
  CartVectors``. ``orders`` is the exact ``items x items`` co-count matrix over orders, its
  diagonal each item's order count (``EvidenceCounts.orders.matrix()`` in a build; a matrix
  of only some rows needs ``item_counts``); ``customers`` the same over customers' whole
  histories (``EvidenceCounts.customers.matrix()``), read for the privacy threshold: a pair
  bought together by fewer than ``min_customers`` distinct customers is never kept (``None``
  when there is no threshold). ``shrink``, ``lift`` and ``length`` are what a shop may tune
  (:data:`DEFAULT_SHRINK`, :data:`DEFAULT_LIFT`, :data:`DEFAULT_LENGTH` otherwise); a build
  records the values it used (``Build.parameters["cart"]``) and the incremental update reuses
  them.
- :func:`vector_weights` ``(co_counts, count_q, shrink, count_c=None, lift=0.0) -> float32``:
  the weight of each term, for code that has the counts of a few pairs (the incremental
  update); :func:`cart_vectors` computes its weights with it.
- :func:`score_cart` ``(parts, cart, top=None) -> (candidates, scores)``: the cart's ranking
  from its products' vectors (``(dst, weight)`` pairs, in ascending order of their products),
  the cart's own products removed, ties broken by the smaller id.

No Django here: ids are whatever the caller uses (item indices, product ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import IntArray
from crosssell.engine.similarity import lookup_pairs, top_counts_per_row

FloatArray = npt.NDArray[np.float32]

#: The shrinkage prior, in orders, and how far the weights move from the conditional
#: probability toward the lift: chosen together on the CART-v1 validation carts of both data
#: sets (``benchmarks/tune_cart.py``, BENCHMARKS.md "CART-v1"). A larger lift is worth up to 10%
#: on instacart's carts and costs groceries' 1%: a shop's own tuning may pick it.
DEFAULT_SHRINK = 50.0
DEFAULT_LIFT = 0.075
#: Companions kept per product: the shortest of 12/20/30/50 within 0.5% of the untruncated
#: vectors on the CART-v1 validation carts of both data sets (BENCHMARKS.md).
DEFAULT_LENGTH = 12
#: ``Slot.strategy`` and ``Build.parameters`` key of the cart's ranking.
CART_STRATEGY = "cart"


@dataclass(frozen=True)
class CartVectors:
    """Per item, its best companions and their weights, best first.

    Attributes
    ----------
    items
        The items the vectors are of (ascending item indices).
    indptr
        ``len(items) + 1`` offsets: item ``items[i]``'s terms are ``indptr[i]:indptr[i + 1]``.
    dst
        The companions (item indices).
    weight
        :func:`vector_weights` of each term, float32 (what is stored and summed).
    customers
        Distinct customers who bought both (over their whole history; 0 when not counted).
    shrink, length, lift, min_customers
        The parameters they were computed with.
    """

    items: IntArray
    indptr: IntArray
    dst: IntArray
    weight: FloatArray
    customers: npt.NDArray[np.int32]
    shrink: float = DEFAULT_SHRINK
    length: int = DEFAULT_LENGTH
    lift: float = DEFAULT_LIFT
    min_customers: int = 0

    def __len__(self) -> int:
        return len(self.items)

    def of(self, position: int) -> tuple[IntArray, FloatArray]:
        """The ``(dst, weight)`` of the item at ``position`` in :attr:`items`."""
        a, b = int(self.indptr[position]), int(self.indptr[position + 1])
        return self.dst[a:b], self.weight[a:b]

    def parts(self) -> dict[int, tuple[IntArray, FloatArray]]:
        """``item -> (dst, weight)`` for every item with at least one term."""
        sizes = np.diff(self.indptr)
        return {int(q): self.of(i) for i, q in enumerate(self.items.tolist()) if sizes[i] > 0}


def vector_weights(
    co_counts: npt.ArrayLike,
    count_q: npt.ArrayLike,
    shrink: float = DEFAULT_SHRINK,
    count_c: npt.ArrayLike | None = None,
    lift: float = 0.0,
) -> FloatArray:
    """``co_counts / (count_q + shrink) / count_c ** lift`` as float32: each term's weight.

    Parameters
    ----------
    co_counts
        Orders holding both products of each pair.
    count_q
        Orders holding the pair's first product (scalar or one per pair).
    shrink
        The prior, in orders (``>= 0``).
    count_c
        Orders holding the pair's second product (the candidate), at least 1 counted; read
        only when ``lift`` is not 0.
    lift
        The candidate's popularity exponent: 0 (here the default: pass a vector's own
        ``lift``) the shrunk conditional probability, 1 the lift.
    """
    co = np.asarray(co_counts, dtype=np.float64)
    denominator = np.asarray(count_q, dtype=np.float64) + float(shrink)
    out = np.zeros(np.broadcast(co, denominator).shape, dtype=np.float64)
    np.divide(co, denominator, out=out, where=denominator > 0)
    if lift:
        if count_c is None:
            raise ValueError("a lift needs the candidates' counts")
        out /= np.maximum(np.asarray(count_c, dtype=np.float64), 1.0) ** float(lift)
    return out.astype(np.float32)


def cart_vectors(
    orders: sp.csr_matrix,
    customers: sp.csr_matrix | None = None,
    *,
    items: npt.ArrayLike | None = None,
    shrink: float = DEFAULT_SHRINK,
    length: int = DEFAULT_LENGTH,
    lift: float = DEFAULT_LIFT,
    min_customers: int = 0,
    item_counts: npt.ArrayLike | None = None,
) -> CartVectors:
    """Each item's ``length`` best companions, weighted by :func:`vector_weights`.

    The best terms are the largest float32 weights, ties by the smaller index: found on the
    weights' bit patterns as integers (a positive float32's bits sort as its value), with the
    integer top-k of the co-counts (:func:`~crosssell.engine.similarity.top_counts_per_row`).

    Parameters
    ----------
    orders
        Exact integer co-counts over orders, ``items x items``; the diagonal holds each item's
        order count (``M.T @ M`` of the binary baskets, as
        :func:`~crosssell.engine.similarity.cooccurrence_counts` returns it; indices may be
        unsorted). Not modified.
    customers
        The same over customers' whole histories; read only when ``min_customers > 1`` (and
        for the stored customers of each pair, when given).
    items
        The items (rows) to compute, ascending (default: all).
    shrink
        The prior, in orders (``>= 0``).
    length
        Terms kept per item (``>= 1``).
    lift
        The candidate's popularity exponent (``>= 0``).
    min_customers
        The privacy threshold: pairs bought together by fewer distinct customers are dropped.
    item_counts
        Orders holding each item (default: ``orders``' diagonal). Needed when ``orders`` holds
        only some rows (the other items' diagonal entries are missing) and ``lift`` is not 0.

    Returns
    -------
    CartVectors

    Raises
    ------
    ValueError
        A negative ``shrink`` or ``lift``, a ``length`` below 1, unsorted ``items``, or a
        threshold without ``customers``.
    """
    if shrink < 0 or lift < 0:
        raise ValueError("shrink and lift must be >= 0")
    if length < 1:
        raise ValueError("length must be >= 1")
    full = sp.csr_matrix(orders)
    n = full.shape[0]
    everything = items is None
    rows = np.arange(n, dtype=np.int64) if everything else np.asarray(items, dtype=np.int64)
    rows = rows.ravel()
    if len(rows) > 1 and np.any(np.diff(rows) <= 0):
        raise ValueError("items must be ascending and distinct")
    threshold = int(min_customers) > 1
    if threshold and customers is None:
        raise ValueError("a privacy threshold needs the customers' co-counts")
    # orders holding each item
    count = np.asarray(
        full.diagonal() if item_counts is None else item_counts, dtype=np.float64
    ).ravel()
    if len(count) != n:
        raise ValueError("item_counts must have one count per item")
    # row i of co (and people) is item rows[i]; a full build reads the matrices as they are
    co = full if everything else full[rows]
    people = None
    if customers is not None:
        people = sp.csr_matrix(customers) if everything else sp.csr_matrix(customers)[rows]
    if threshold and people is not None:
        # only the pairs enough customers bought (the customers' pattern covers the orders')
        minimum = int(min_customers)
        co = sp.csr_matrix(co.multiply(people >= minimum))
    co = sp.csr_matrix(co)
    positions = np.arange(len(rows), dtype=np.int64)
    at = np.repeat(positions, np.diff(co.indptr))
    weight = vector_weights(co.data, count[rows][at], shrink, count[co.indices], lift)
    weight[(co.indices == rows[at]) | (co.data <= 0)] = 0  # the diagonal, and no pair
    # laid out as the full matrix's rows (the others empty), keyed by the weights' bits
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[rows + 1] = np.diff(co.indptr)
    keys = sp.csr_matrix(
        (weight.view(np.int32).astype(np.int64), co.indices, np.cumsum(indptr)),
        shape=(n, co.shape[1]),
    )
    top = top_counts_per_row(keys, rows, int(length))
    idx = np.asarray(top.indices, dtype=np.int64)
    keep = idx >= 0
    sizes = keep.sum(axis=1)
    dst = idx[keep]
    at = np.repeat(positions, sizes)
    pair_counts = lookup_pairs(co, at, dst)
    weights = vector_weights(pair_counts, count[rows][at], shrink, count[dst], lift)
    who = np.zeros(len(dst), dtype=np.int32)
    if people is not None and len(dst):
        who = lookup_pairs(people, at, dst).astype(np.int32)
    return CartVectors(
        rows,
        np.r_[0, np.cumsum(sizes)].astype(np.int64),
        dst,
        weights,
        who,
        float(shrink),
        int(length),
        float(lift),
        int(min_customers),
    )


def score_cart(
    parts: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    cart: Iterable[int] = (),
    top: int | None = None,
) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """A cart's candidates, best first: each one's weights summed over the cart's vectors.

    Parameters
    ----------
    parts
        The cart's products' vectors, ``(dst, weight)`` each, in ascending order of their
        products (the sum adds them in that order, in float64).
    cart
        The cart's products: never a candidate.
    top
        Keep the ``top`` best (default: all).

    Returns
    -------
    candidates, scores
        Highest summed weight first; equal sums by the smaller id.
    """
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    dst = np.concatenate([np.asarray(d, dtype=np.int64).ravel() for d, _ in parts])
    weight = np.concatenate(
        [np.asarray(w, dtype=np.float32).ravel().astype(np.float64) for _, w in parts]
    )
    own = np.fromiter((int(c) for c in cart), dtype=np.int64)
    if len(own):
        keep = ~np.isin(dst, own)
        dst, weight = dst[keep], weight[keep]
    ids, inverse = np.unique(dst, return_inverse=True)
    sums: npt.NDArray[np.float64] = np.bincount(
        inverse.ravel(), weights=weight, minlength=len(ids)
    ).astype(np.float64)
    order = np.lexsort((ids, -sums))
    if top is not None:
        order = order[: max(int(top), 0)]
    best: IntArray = ids[order].astype(np.int64)
    return best, sums[order]


__all__ = [
    "CART_STRATEGY",
    "DEFAULT_LENGTH",
    "DEFAULT_LIFT",
    "DEFAULT_SHRINK",
    "CartVectors",
    "cart_vectors",
    "score_cart",
    "vector_weights",
]
