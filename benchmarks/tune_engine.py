"""Tune the engine's defaults on validation splits carved from the TRAINING part only.

FBT-v1: the training orders of each data set are split again by the same rule (temporal or
random 20%); PERSONAL-MS: the training rows are split again per item (75/25). The test part of
either protocol is never read. Prints one markdown table per grid; the chosen values are the
registry defaults (crosssell/engine/registry.py).

Usage: .venv/bin/python benchmarks/tune_engine.py [--data ../shared/data] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crosssell.engine.evaluation.data import read_products, read_purchases
from crosssell.engine.evaluation.fbt import evaluate_fbt, fbt_split, training_log
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
#: The cold slice only exercises the content prior (the items have no co-purchases).
COLD_GRID: list[tuple[str, dict[str, Any]]] = [
    ("cocount_content", {"prior": 30.0, "content_prior": 30.0}),
    ("cocount_content", {"prior": 30.0, "content_prior": 300.0}),
    ("cocount_content", {"prior": 30.0, "content_prior": 3000.0}),
]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--datasets", default="groceries,instacart")
    a = ap.parse_args()
    root = Path(a.data)
    for name in a.datasets.split(","):
        log = training_log(read_purchases(root / name / "purchases.csv.gz"))
        catalog = read_products(root / name / "products.csv.gz")
        for cold in (False, True):
            split = fbt_split(log, catalog, cold=cold)
            print(
                f"\n### {name}, validation ({'cold' if cold else 'all'}), "
                f"{len(split.query_items)} queries\n"
            )
            print("| strategy | params | HR@10 | NDCG@10 |\n|---|---|---|---|")
            grid = COLD_GRID if cold else FBT_GRID
            for strat, params in [("popularity", {}), *grid]:
                r = evaluate_fbt(build_strategy(strat, **params), split)  # type: ignore[arg-type]
                print(f"| {strat} | {params} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} |", flush=True)
    ml = root / "movielens-100k" / "purchases.csv.gz"
    if ml.exists():
        split_p = personal_split(training_rows(read_purchases(ml)))
        print("\n### movielens-100k, validation\n")
        print("| strategy | params | P@10 | NDCG@10 |\n|---|---|---|---|")
        for strat, params in PERSONAL_GRID:
            r = evaluate_personal(build_strategy(strat, **params), split_p)  # type: ignore[arg-type]
            print(
                f"| {strat} | {params} | {r['precision@10']:.4f} | {r['ndcg@10']:.4f} |", flush=True
            )


if __name__ == "__main__":
    main()
