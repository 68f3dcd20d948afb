"""Tune the engine's defaults on validation splits carved from the TRAINING part only.

FBT-v1: the training orders of each data set are split again by the same rule (temporal or
random 20%); PERSONAL-MS: the training rows are split again per item (75/25). The test part of
either protocol is never read. Prints one markdown table per grid; the chosen values are the
registry defaults (crosssell/engine/registry.py).

The cold slice is validated on several draws of hidden products (10% of the validation
training products, ``numpy.random.default_rng(seed).choice`` as in PROTOCOL.md; seed 42 is
exactly FBT-v1's cold split of the training orders): a draw hides a few products only, so one
draw alone is noise on a small catalog. The mean over the draws decides.

Usage: .venv/bin/python benchmarks/tune_engine.py [--data ../shared/data]
       [--datasets groceries,instacart] [--cold-seeds 42,1,2] [--skip-all] [--skip-personal]
       [--match category_weight]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crosssell.engine.base import Interactions
from crosssell.engine.evaluation.data import read_products, read_purchases
from crosssell.engine.evaluation.fbt import FBTSplit, evaluate_fbt, fbt_split, training_log
from crosssell.engine.evaluation.personal import (
    evaluate_personal,
    personal_split,
    training_rows,
)
from crosssell.engine.registry import build_strategy

FBT_GRID: list[tuple[str, dict[str, Any]]] = [
    ("cocount", {"prior": 0.0}),
    ("cocount", {"prior": 10.0}),
    ("cocount", {"prior": 30.0}),
    ("cocount", {"prior": 100.0}),
    ("cocount_content", {"prior": 10.0, "content_prior": 30.0}),
    ("cocount_content", {"prior": 30.0, "content_prior": 30.0}),
    ("cocount_content", {"prior": 100.0, "content_prior": 30.0}),
    ("cocount_content", {"prior": 30.0, "content_prior": 300.0}),
    ("cocount_content", {"prior": 30.0, "content_prior": 3000.0}),
]
#: The cold slice only exercises what serves items with no sales: the look-alikes' companions
#: (``category_prior=None``) or the category's companions (``category_companions`` ranks a cold
#: item exactly as ``cocount_content`` with the same ``category_*`` parameters does).
COLD_GRID: list[tuple[str, dict[str, Any]]] = [
    ("cocount_content", {"category_prior": None, "content_prior": 30.0}),
    ("cocount_content", {"category_prior": None, "content_prior": 300.0}),
    ("cocount_content", {"category_prior": None, "content_prior": 3000.0}),
    *[
        ("category_companions", {"prior": m, "exponent": b})
        for m in (30.0, 100.0, 300.0, 1000.0)
        for b in (0.5, 0.75, 1.0)
    ],
    *[("cocount_content", {"category_weight": w}) for w in (0.0, 0.25, 0.5, 0.75, 1.0)],
]
#: Draws of hidden products per data set (42: FBT-v1's own; more where the catalog is small).
COLD_SEEDS = {"groceries": (42, 1, 2, 3, 4, 5), "instacart": (42, 1)}
PERSONAL_GRID: list[tuple[str, dict[str, Any]]] = [
    ("ease", {"l2": 100.0}),
    ("ease", {"l2": 200.0}),
    ("ease", {"l2": 400.0}),
    ("ease", {"l2": 800.0}),
    ("ease", {"l2": 1600.0}),
    ("user_knn", {"neighbours": 50}),
    ("user_knn", {"neighbours": 100}),
    ("user_knn", {"neighbours": 200}),
]


def hide_products(split: FBTSplit, seed: int) -> FBTSplit:
    """FBT-v1's cold slice of a full split, with the hidden products drawn by ``seed``.

    The training lines of ``n // 10`` of the ``n`` training products
    (``default_rng(seed).choice``, products sorted as strings as in ``fbt_split``) are removed;
    queries are the test items among them. Seed 42 gives ``fbt_split(..., cold=True)``.
    """
    n = split.train.n_items
    hidden = np.sort(np.random.default_rng(seed).choice(n, size=n // 10, replace=False))
    keep_col = np.ones(n)
    keep_col[hidden] = 0.0
    X = (split.train.baskets @ sp.diags(keep_col)).tocsr()
    X.eliminate_zeros()
    rows = np.diff(X.indptr) > 0  # an order of hidden products only is gone, as in fbt_split
    _, cust = np.unique(split.train.customers[rows], return_inverse=True)
    train = Interactions(
        sp.csr_matrix(X[rows], dtype=np.float32),
        cust.astype(np.int64),
        int(cust.max()) + 1 if len(cust) else 0,
        split.train.content,
    )
    q = np.isin(split.query_items, hidden)
    return dataclasses.replace(
        split,
        train=train,
        query_items=split.query_items[q],
        query_orders=split.query_orders[q],
        n_relevant=split.n_relevant[q],
        hidden=hidden.astype(np.int64),
        cold=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--datasets", default="groceries,instacart")
    ap.add_argument("--cold-seeds", default="", help="draws of hidden products (default: per set)")
    ap.add_argument("--skip-all", action="store_true", help="only the cold slice")
    ap.add_argument("--skip-personal", action="store_true", help="no PERSONAL-MS grid")
    ap.add_argument("--match", default="", help="only cold-grid rows whose 'name params' has it")
    a = ap.parse_args()
    root = Path(a.data)
    for name in a.datasets.split(","):
        log = training_log(read_purchases(root / name / "purchases.csv.gz"))
        catalog = read_products(root / name / "products.csv.gz")
        split = fbt_split(log, catalog)
        if not a.skip_all:
            print(f"\n### {name}, validation (all), {len(split.query_items)} queries\n")
            print("| strategy | params | HR@10 | NDCG@10 |\n|---|---|---|---|")
            for strat, params in [("popularity", {}), *FBT_GRID]:
                r = evaluate_fbt(build_strategy(strat, **params), split)
                print(f"| {strat} | {params} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} |", flush=True)
        seeds = (
            tuple(int(x) for x in a.cold_seeds.split(","))
            if a.cold_seeds
            else COLD_SEEDS.get(name, (42,))
        )
        colds = [hide_products(split, seed) for seed in seeds]
        sizes = ", ".join(str(len(c.query_items)) for c in colds)
        print(f"\n### {name}, validation (cold), seeds {seeds}, {sizes} queries\n")
        print("| strategy | params | NDCG@10 per seed | mean NDCG@10 |\n|---|---|---|---|")
        grid = [(st, pa) for st, pa in COLD_GRID if a.match in f"{st} {pa}"]
        for strat, params in [("popularity", {}), *grid]:
            vals = [evaluate_fbt(build_strategy(strat, **params), c)["ndcg@10"] for c in colds]
            per = " / ".join(f"{v:.4f}" for v in vals)
            print(f"| {strat} | {params} | {per} | {np.mean(vals):.4f} |", flush=True)
    if a.skip_personal:
        return
    ml = root / "movielens-100k" / "purchases.csv.gz"
    if ml.exists():
        split_p = personal_split(training_rows(read_purchases(ml)))
        print("\n### movielens-100k, validation\n")
        print("| strategy | params | P@10 | NDCG@10 |\n|---|---|---|---|")
        for strat, params in PERSONAL_GRID:
            r = evaluate_personal(build_strategy(strat, **params), split_p)
            print(
                f"| {strat} | {params} | {r['precision@10']:.4f} | {r['ndcg@10']:.4f} |", flush=True
            )


if __name__ == "__main__":
    main()
