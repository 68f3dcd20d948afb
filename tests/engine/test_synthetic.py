"""The synthetic shop: deterministic, Zipf-like, with the co-purchase structure it promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crosssell.engine.evaluation.data import read_products, read_purchases
from crosssell.engine.synthetic import make_shop, write_interchange


def test_same_seed_same_shop_and_about_4_4_lines_per_order() -> None:
    a = make_shop(n_products=2000, n_orders=20_000, random_state=7)
    b = make_shop(n_products=2000, n_orders=20_000, random_state=7)
    c = make_shop(n_products=2000, n_orders=20_000, random_state=8)
    assert (a.data.baskets != b.data.baskets).nnz == 0
    assert (a.data.baskets != c.data.baskets).nnz > 0
    lines = a.data.baskets.nnz / a.data.n_orders
    assert 4.0 < lines < 4.8
    counts = np.sort(np.asarray(a.data.baskets.sum(axis=0)).ravel())[::-1]
    # Zipf-like: the best seller sells far more than the median product
    assert counts[0] > 20 * np.median(counts)


def test_complementary_categories_are_bought_together() -> None:
    shop = make_shop(n_products=500, n_orders=20_000, random_state=9)
    X = shop.data.baskets
    cat = shop.category
    n_cat = int(cat.max()) + 1
    onehot = np.zeros((X.shape[1], n_cat))
    onehot[np.arange(X.shape[1]), cat] = 1
    per_order = (X @ onehot) > 0
    co = per_order.T.astype(float) @ per_order.astype(float)
    np.fill_diagonal(co, 0)
    # each category's complementary category is among its most co-bought
    hits = sum(int(shop.complement[c] in np.argsort(-co[c])[:3]) for c in range(n_cat))
    assert hits >= 0.8 * n_cat


def test_write_interchange_round_trip(tmp_path: Path) -> None:
    shop = make_shop(n_products=50, n_orders=200, random_state=1)
    products, purchases = write_interchange(shop, tmp_path)
    log = read_purchases(purchases)
    assert len(log) == shop.data.baskets.nnz
    assert (log.purchased_at != "").all()
    assert len(read_products(products).product_ids) == 50
