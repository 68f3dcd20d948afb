"""A generated shop whose best tuning is known, and is not the defaults.

Products come in pairs (``2p``, ``2p + 1``): every order holds one pair, drawn at random, plus
each of a dozen staples independently with probability 0.3. A rare product's partner is in
every order that holds it; the staples ride along by chance. So:

- on the product page, the co-purchase count alone (``cocount_content`` with ``prior`` 0) ranks
  the partner first, while the default content prior (30) ranks the staples above it: its
  look-alikes (by category, which says nothing of the pairs) all sell with the staples;
- in a cart, ``P(c | q)`` barely shrunk (``shrink`` 0 or 5) lets a rare product vouch for its
  partner (``P = 1``), or the largest ``lift`` tried demotes the staples every cart holds by
  chance (with it, the shrink matters little), while the defaults (shrink 50, lift 0.075) let
  the staples' chance co-purchases win.

The test orders (:func:`split_shop`, :func:`held_out_queries`) come from the same pairs and
staples, after the orders the shop learns from: the tuning never reads them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemContent

N_PAIRS = 1_000
N_STAPLES = 12
STAPLE_RATE = 0.3


def pairs_orders(
    n_orders: int, n_pairs: int = N_PAIRS, seed: int = 0
) -> tuple[sp.csr_matrix, npt.NDArray[np.int64]]:
    """``n_orders x items`` binary baskets and the pair of each order."""
    rng = np.random.default_rng(seed)
    n_items = 2 * n_pairs + N_STAPLES
    pair = rng.integers(0, n_pairs, size=n_orders)
    staples = rng.random((n_orders, N_STAPLES)) < STAPLE_RATE
    s_row, s_col = np.nonzero(staples)
    rows = np.concatenate([np.arange(n_orders), np.arange(n_orders), s_row])
    cols = np.concatenate([2 * pair, 2 * pair + 1, 2 * n_pairs + s_col])
    X = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_orders, n_items)
    )
    X.sum_duplicates()
    return X, pair.astype(np.int64)


def pairs_content(n_pairs: int = N_PAIRS, seed: int = 0) -> ItemContent:
    """Names and categories: the rare products in 30 categories at random (blind to the
    pairs), the staples in one of their own."""
    rng = np.random.default_rng(seed + 1)
    n_items = 2 * n_pairs + N_STAPLES
    categories = [f"dept > cat{c}" for c in rng.integers(0, 30, size=2 * n_pairs)]
    categories += ["pantry > staples"] * N_STAPLES
    names = [f"item {i}" for i in range(n_items)]
    return ItemContent(names, [""] * n_items, categories, np.full(n_items, 5.0))


def pairs_shop(
    n_orders: int = 8_000, n_pairs: int = N_PAIRS, seed: int = 0, min_customers: int = 3
) -> Interactions:
    """The shop's orders (one customer each), with the privacy threshold a build sets."""
    X, _ = pairs_orders(n_orders, n_pairs, seed)
    data = Interactions(X, np.arange(n_orders), n_orders, pairs_content(n_pairs, seed))
    data.extra["min_customers"] = min_customers
    return data


def split_shop(
    n_orders: int, test_orders: int, n_pairs: int = N_PAIRS, seed: int = 0
) -> tuple[Interactions, sp.csr_matrix]:
    """The first ``n_orders`` orders as the shop's, the next ``test_orders`` kept for the test."""
    X, _ = pairs_orders(n_orders + test_orders, n_pairs, seed)
    train = sp.csr_matrix(X[:n_orders])
    data = Interactions(train, np.arange(n_orders), n_orders, pairs_content(n_pairs, seed))
    data.extra["min_customers"] = 3
    return data, sp.csr_matrix(X[n_orders:])


Cart = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


def held_out_queries(
    test: sp.csr_matrix, seed: int = 1
) -> tuple[list[tuple[int, int]], list[Cart]]:
    """The test orders as product-page queries ``(order, product)`` and as carts
    ``(cart, rest)`` (every basket of 3 or more, shuffled, its first half the cart)."""
    rng = np.random.default_rng(seed)
    queries: list[tuple[int, int]] = []
    carts: list[Cart] = []
    for row in range(test.shape[0]):
        items = np.sort(test.indices[test.indptr[row] : test.indptr[row + 1]]).astype(np.int64)
        queries += [(row, int(q)) for q in items]
        if len(items) >= 3:
            shuffled = rng.permutation(items)
            half = len(items) // 2
            carts.append((np.sort(shuffled[:half]), shuffled[half:]))
    return queries, carts
