"""The cart vectors' shrink, lift and length, chosen on CART-v1 validation carts (never the test
carts).

The validation carts are carved from FBT-v1's training orders only (``fbt.training_log``, then
the CART-v1 split of that log), as ``benchmarks/tune_engine.py`` does for FBT-v1. Each setting is
scored as the widget serves it (``crosssell.engine.evaluation.cart``'s ``served`` row: summed
cart vectors for carts of several products, the stored list for a one-product cart), with the
privacy threshold of 3 customers, and without it for comparison.

Usage: .venv/bin/python benchmarks/tune_cart.py [--datasets groceries,instacart]
       [--shrink 5,10,20,50] [--lift 0,0.1,0.2,0.3] [--length 30] [--open] [--json]
(``--length 0``: untruncated vectors; ``--open``: also without the privacy threshold.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from crosssell.engine.cart import score_cart, vector_weights  # noqa: E402
from crosssell.engine.evaluation import cart as cart_eval  # noqa: E402
from crosssell.engine.evaluation.data import read_products, read_purchases  # noqa: E402
from crosssell.engine.evaluation.fbt import training_log  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def served_with(
    ctx: cart_eval.CartContext, shrink: float, lift: float, length: int, minimum: int
) -> dict[str, float]:
    """The ``served`` row's NDCG@10 / HR@10 with other vector parameters."""
    counts = ctx.counts()
    if length > 0:
        vectors = cart_eval.cart_vectors(
            counts.orders.matrix(),
            counts.customers.matrix(),
            shrink=shrink,
            lift=lift,
            length=length,
            min_customers=minimum,
        ).parts()
    else:
        vectors = untruncated(ctx, shrink, lift, minimum)
    carts = ctx.split.carts
    need = sorted(
        {
            int(q)
            for c in carts
            if len(c) == 1 or not any(int(q) in vectors for q in c.tolist())
            for q in c.tolist()
        }
    )
    lists, weights = ctx.served_lists(need)
    ranked = []
    for cart in carts:
        sources = sorted(int(q) for q in cart.tolist())
        parts = [vectors[q] for q in sources if q in vectors]
        if len(sources) > 1 and parts:
            ranked.append(score_cart(parts, sources, cart_eval.TOP)[0])
        else:
            ranked.append(
                cart_eval.fused_lists(lists, [cart], cart_eval.SERVED_RRF_K, weights, by_rank=True)[
                    0
                ]
            )
    res = cart_eval.score(cart_eval.finish(ranked, ctx.split, ctx.pop_order), ctx.split)
    return {"ndcg@10": round(res["ndcg@10"], 4), "hr@10": round(res["hr@10"], 4)}


def untruncated(
    ctx: cart_eval.CartContext, shrink: float, lift: float, minimum: int
) -> dict[int, tuple[Any, Any]]:
    """Every term of every vector (no length), the same weights: a top-k as long as the
    catalog would not fit in memory, so the rows are read off the weighted matrix."""
    counts = ctx.counts()
    co = sp.csr_matrix(counts.orders.matrix())
    if minimum > 1:
        co = sp.csr_matrix(co.multiply(counts.customers.matrix() >= minimum))
    co.sort_indices()
    count = np.asarray(co.diagonal(), dtype=np.float64)
    rows = np.repeat(np.arange(co.shape[0]), np.diff(co.indptr))
    weight = vector_weights(co.data, count[rows], shrink, count[co.indices], lift)
    weight[co.indices == rows] = 0
    out = {}
    for q in range(co.shape[0]):
        a, b = co.indptr[q], co.indptr[q + 1]
        keep = weight[a:b] > 0
        if keep.any():
            out[q] = (co.indices[a:b][keep].astype(np.int64), weight[a:b][keep])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", default="groceries,instacart")
    ap.add_argument("--shrink", default="5,10,20,50")
    ap.add_argument("--lift", default="0,0.1,0.2,0.3")
    ap.add_argument("--length", default="30")
    ap.add_argument("--open", action="store_true", help="also without the privacy threshold")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    shrinks = [float(v) for v in a.shrink.split(",")]
    lifts = [float(v) for v in a.lift.split(",")]
    lengths = [int(v) for v in a.length.split(",")]
    out: list[dict[str, Any]] = []
    for name in a.datasets.split(","):
        t0 = time.perf_counter()
        log = training_log(read_purchases(DATA / name / "purchases.csv.gz"))
        split = cart_eval.cart_split(log, read_products(DATA / name / "products.csv.gz"))
        ctx = cart_eval.CartContext(split)
        print(f"{name}: {len(split.carts)} validation carts", file=sys.stderr)
        minimums = [cart_eval.SERVED_MIN_CUSTOMERS] + ([0] if a.open else [])
        for minimum, length, shrink, lift in itertools.product(minimums, lengths, shrinks, lifts):
            row = {
                "dataset": name,
                "min_customers": minimum,
                "length": length or "all",
                "shrink": shrink,
                "lift": lift,
                **served_with(ctx, shrink, lift, length, minimum),
            }
            out.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if a.json:
        print(json.dumps(out))
    else:
        for row in out:
            print(
                f"{row['dataset']} min_customers={row['min_customers']} length={row['length']} "
                f"shrink={row['shrink']:g} lift={row['lift']:g}: "
                f"ndcg@10 {row['ndcg@10']:.4f} hr@10 {row['hr@10']:.4f}"
            )


if __name__ == "__main__":
    main()
