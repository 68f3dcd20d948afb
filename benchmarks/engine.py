"""Item-item top-50 on the synthetic shop: our sparse product against implicit's CosineRecommender.

Both run on the same ``orders x products`` matrix with the same number of threads in the same
process; each is timed ``--repeat`` times, alternately, and the best time of each is reported
(the machine is shared, so the minimum is the least disturbed run). Peak RSS covers the whole run,
generation included.

Usage: .venv/bin/python benchmarks/engine.py --products 100000 --orders 1000000 [--json]
       [--threads N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crosssell.engine.item_knn import ItemKNN
from crosssell.engine.synthetic import make_shop

K = 50


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", action="store_true", help="print JSON only")
    a = ap.parse_args()
    log = sys.stderr

    t = time.perf_counter()
    shop = make_shop(n_products=a.products, n_orders=a.orders, random_state=a.seed)
    X = shop.data.baskets
    print(
        f"synthetic shop: {X.shape[1]} products, {X.shape[0]} orders, {X.nnz} lines "
        f"({X.nnz / X.shape[0]:.2f} per order) in {time.perf_counter() - t:.1f}s",
        file=log,
    )
    try:
        from implicit.nearest_neighbours import CosineRecommender
    except ImportError:
        CosineRecommender = None
        print("implicit is not installed: only our time is measured", file=log)

    ours: list[float] = []
    theirs: list[float] = []
    for rep in range(a.repeat):
        t = time.perf_counter()
        model = ItemKNN(neighbours=K, n_threads=a.threads).fit(shop.data)
        ours.append(time.perf_counter() - t)
        nnz = model.similarity_.nnz
        del model
        if CosineRecommender is not None:
            ref = CosineRecommender(K=K, num_threads=a.threads)
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref.fit(X, show_progress=False)
            theirs.append(time.perf_counter() - t)
            del ref
        print(
            f"run {rep + 1}: ours {ours[-1]:.2f}s ({nnz} similarities)"
            + (f", implicit {theirs[-1]:.2f}s" if theirs else ""),
            file=log,
        )
    result = {
        "products": a.products,
        "orders": a.orders,
        "lines": int(X.nnz),
        "threads": a.threads,
        "ours_seconds": round(min(ours), 3),
        "implicit_seconds": round(min(theirs), 3) if theirs else None,
        "ratio": round(min(ours) / min(theirs), 3) if theirs else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(
            f"| threads | ours (s) | implicit (s) | ours / implicit | peak RSS (MB) |\n"
            f"|---|---|---|---|---|\n"
            f"| {a.threads} | {result['ours_seconds']} | {result['implicit_seconds']} | "
            f"{result['ratio']} | {result['peak_rss_mb']} |"
        )


if __name__ == "__main__":
    main()
