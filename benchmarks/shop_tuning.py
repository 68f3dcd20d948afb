"""What the per-shop tuning of a build chooses on the real data sets, and what it is worth.

For each data set, FBT-v1's training orders play the shop's orders: the build's tuning
(:func:`crosssell.engine.tuning.tune`, seed 42, the build's privacy threshold of 3 customers,
the served blend ``cocount_content`` then ``popularity``) carves its own validation split from
them and picks the product page's ``prior`` and ``content_prior`` and the cart vectors'
``shrink`` and ``lift``. FBT-v1's test orders, which the tuning never reads, then score the
default and the tuned choice: FBT-v1 for the product page (the blend fitted on the training
orders, :func:`~crosssell.engine.evaluation.fbt.evaluate_fbt`) and CART-v1 for the cart (the
training orders' cart vectors as a build computes them, each cart ranked by
:func:`~crosssell.engine.cart.score_cart`, then bestsellers).

Usage: .venv/bin/python benchmarks/shop_tuning.py [--data ../shared/data]
       [--datasets groceries,instacart] [--min-customers 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crosssell.engine.base import Interactions, ItemRecommender
from crosssell.engine.blend import Blend
from crosssell.engine.cart import (
    DEFAULT_LENGTH,
    DEFAULT_LIFT,
    DEFAULT_SHRINK,
    cart_vectors,
    score_cart,
)
from crosssell.engine.evaluation import cart as cart_eval
from crosssell.engine.evaluation.data import read_products, read_purchases
from crosssell.engine.evaluation.fbt import evaluate_fbt
from crosssell.engine.evidence import MIN_CUSTOMERS_KEY, privacy_threshold
from crosssell.engine.similarity import cooccurrence_counts
from crosssell.engine.tuning import tune


def cart_test(
    split: cart_eval.CartSplit, train: Interactions, shrink: float, lift: float
) -> dict[str, Any]:
    """CART-v1 of the cart vectors computed with ``shrink`` and ``lift`` on the training
    orders."""
    minimum = privacy_threshold(train)
    customers = cooccurrence_counts(train.customer_items()) if minimum > 1 else None
    vectors = cart_vectors(
        cooccurrence_counts(train.baskets),
        customers,
        shrink=shrink,
        lift=lift,
        length=DEFAULT_LENGTH,
        min_customers=minimum,
    ).parts()
    ranked = []
    for cart in split.carts:
        items = sorted({int(q) for q in cart.tolist()})
        parts = [vectors[q] for q in items if q in vectors]
        ranked.append(score_cart(parts, items, top=cart_eval.TOP)[0])
    pop = np.asarray(train.baskets.sum(axis=0)).ravel()
    shown = cart_eval.finish(ranked, split, np.argsort(-pop, kind="stable").astype(np.int64))
    return cart_eval.score(shown, split)


def run(name: str, data_dir: Path, min_customers: int) -> dict[str, Any]:
    log = read_purchases(data_dir / name / "purchases.csv.gz")
    catalog = read_products(data_dir / name / "products.csv.gz")
    carts = cart_eval.cart_split(log, catalog)  # FBT-v1's split and CART-v1's carts on it
    fbt = carts.fbt
    train = fbt.train
    train.extra[MIN_CUSTOMERS_KEY] = min_customers  # what the build sets
    started = time.perf_counter()
    result = tune(train, Blend(), random_state=42)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {"dataset": name, "tuning": result.as_dict(), "seconds": seconds}
    test: dict[str, Any] = {}
    models: dict[str, ItemRecommender] = {"default": Blend(), "tuned": result.model}
    for label, model in models.items():
        test[f"fbt_{label}"] = evaluate_fbt(model, fbt)
    defaults = {"shrink": DEFAULT_SHRINK, "lift": DEFAULT_LIFT}
    for label, params in {"default": defaults, "tuned": result.cart_params or defaults}.items():
        test[f"cart_{label}"] = cart_test(carts, train, **params)
    out["test"] = test
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data"))
    parser.add_argument("--datasets", default="groceries,instacart")
    parser.add_argument("--min-customers", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name in args.datasets.split(","):
        res = run(name, Path(args.data), args.min_customers)
        if args.json:
            print(json.dumps(res, default=float))
            continue
        tuning = res["tuning"]
        print(f"## {name} (tuning {res['seconds']:.1f} s)")
        for part in ("product", "cart"):
            p = tuning.get(part)
            if p is None:
                continue
            print(
                f"- {part}: chosen {p['chosen']} (defaults {p['defaults']}), validation "
                f"NDCG@10 {p['ndcg@10']:.4f} vs {p['default_ndcg@10']:.4f}, "
                f"{p['queries']} queries, {p['seconds']:.1f} s"
            )
        for note in tuning.get("notes", []):
            print(f"- note: {note}")
        for key, figures in res["test"].items():
            print(
                f"- test {key}: ndcg@10 {figures['ndcg@10']:.4f}, hr@10 {figures['hr@10']:.4f}, "
                f"queries {figures['queries']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
