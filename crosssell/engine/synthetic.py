"""A synthetic shop: Zipf-like popularity with co-purchase structure (PROTOCOL.md's build).

Every item belongs to a category and every category has a complementary one (cameras ->
memory cards). An order starts from an item drawn by popularity; each further line comes, with
probability ``complement_rate``, from the anchor's complementary category (by popularity within
it), else from the whole catalog. Deterministic for a given ``random_state``.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import IntArray, Interactions, ItemContent


@dataclass(frozen=True)
class SyntheticShop:
    """The generated shop and the structure it was generated from (the known answer)."""

    data: Interactions
    category: IntArray  # per item
    complement: IntArray  # per category: its complementary category
    popularity_weight: npt.NDArray[np.float64]  # per item, sums to 1


def make_shop(
    n_products: int = 1_000,
    n_orders: int = 10_000,
    mean_lines: float = 4.7,
    n_categories: int | None = None,
    zipf_exponent: float = 1.0,
    complement_rate: float = 0.6,
    orders_per_customer: float = 4.0,
    random_state: int = 42,
) -> SyntheticShop:
    """Generate a shop's order history.

    Parameters
    ----------
    n_products, n_orders
        Catalog size and number of orders.
    mean_lines
        Mean number of lines drawn per order; duplicates are merged, so the default 4.7 gives
        about 4.4 distinct lines per order.
    n_categories
        Number of categories (default: one per 100 products, at least 2).
    zipf_exponent
        Popularity of the item of rank ``r`` is proportional to ``r ** -zipf_exponent``.
    complement_rate
        Share of an order's further lines drawn from the anchor's complementary category.
    orders_per_customer
        Mean number of orders per customer.
    random_state
        Seed: the same seed gives the same shop.
    """
    if n_products < 2 or n_orders < 1:
        raise ValueError("need at least 2 products and 1 order")
    rng = np.random.default_rng(random_state)
    n_cat = n_categories or max(2, n_products // 100)
    weight = 1.0 / np.arange(1, n_products + 1, dtype=np.float64) ** zipf_exponent
    weight = weight[rng.permutation(n_products)]
    weight /= weight.sum()
    category = rng.integers(0, n_cat, size=n_products).astype(np.int64)
    # complementary category: shifted by 1..n_cat-1, so never the category itself
    shift = 1 + rng.integers(0, n_cat - 1, size=n_cat)
    complement = ((np.arange(n_cat) + shift) % n_cat).astype(np.int64)
    # items sorted by category, so "an item of category c by popularity" is a search in one
    # slice of the cumulative weights
    by_cat = np.lexsort((np.arange(n_products), category))
    cum = np.cumsum(weight[by_cat])
    cum[-1] = 1.0
    starts = np.searchsorted(category[by_cat], np.arange(n_cat), side="left")
    ends = np.searchsorted(category[by_cat], np.arange(n_cat), side="right")
    lo = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    hi = np.where(ends > 0, cum[np.maximum(ends - 1, 0)], 0.0)

    sizes = 1 + rng.poisson(max(mean_lines - 1.0, 0.0), size=n_orders)
    total = int(sizes.sum())
    order_of_line = np.repeat(np.arange(n_orders, dtype=np.int64), sizes)
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    is_anchor = np.zeros(total, dtype=bool)
    is_anchor[first] = True

    def draw_global(n: int) -> IntArray:
        return by_cat[np.minimum(np.searchsorted(cum, rng.random(n), side="right"), n_products - 1)]

    items = draw_global(total)
    anchors = items[first]
    comp_cat = complement[category[anchors]][order_of_line]
    use_comp = (~is_anchor) & (rng.random(total) < complement_rate) & (hi[comp_cat] > lo[comp_cat])
    c = comp_cat[use_comp]
    u = lo[c] + rng.random(len(c)) * (hi[c] - lo[c])
    pos = np.clip(np.searchsorted(cum, u, side="right"), starts[c], ends[c] - 1)
    items[use_comp] = by_cat[pos]

    X = sp.csr_matrix(
        (np.ones(total, dtype=np.float32), (order_of_line, items)), shape=(n_orders, n_products)
    )
    X.sum_duplicates()
    X.data[:] = 1.0
    n_customers = max(1, round(n_orders / max(orders_per_customer, 1e-9)))
    customers = rng.integers(0, n_customers, size=n_orders).astype(np.int64)
    prices = np.round(np.exp(rng.normal(2.5, 0.8, size=n_products)), 2).astype(np.float64)
    content = ItemContent(
        names=[f"product {i} kind{category[i]}" for i in range(n_products)],
        texts=[""] * n_products,
        categories=[f"dept{category[i] % 10} > cat{category[i]}" for i in range(n_products)],
        prices=prices,
    )
    data = Interactions(X, customers, n_customers, content)
    return SyntheticShop(data, category, complement, weight)


def write_interchange(shop: SyntheticShop, directory: str | Path) -> tuple[Path, Path]:
    """Write the shop as ``products.csv.gz`` and ``purchases.csv.gz`` (PROTOCOL.md's format).

    Orders get increasing ``purchased_at`` stamps (one minute apart), so FBT-v1 splits them in
    time. Returns the two paths.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    data = shop.data
    content = data.content or ItemContent.empty(data.n_items)
    products = out / "products.csv.gz"
    purchases = out / "purchases.csv.gz"
    with gzip.open(products, "wt", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["product_id", "name", "category", "price"])
        for i in range(data.n_items):
            w.writerow([f"p{i}", content.names[i], content.categories[i], content.prices[i]])
    X = data.baskets
    base = np.datetime64("2024-01-01T00:00:00")
    with gzip.open(purchases, "wt", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["order_id", "customer_id", "product_id", "quantity", "unit_price", "purchased_at"]
        )
        for o in range(data.n_orders):
            stamp = str(base + np.timedelta64(o, "m")) + "Z"
            for j in X.indices[X.indptr[o] : X.indptr[o + 1]].tolist():
                w.writerow([f"o{o}", f"c{data.customers[o]}", f"p{j}", 1, content.prices[j], stamp])
    return products, purchases
