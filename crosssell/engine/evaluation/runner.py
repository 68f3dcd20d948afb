"""Run a protocol over strategies and peers side by side, and format the results."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from crosssell.engine.base import ItemRecommender, UserRecommender
from crosssell.engine.evaluation.data import (
    Catalog,
    PurchaseLog,
    read_products,
    read_purchases,
)
from crosssell.engine.evaluation.fbt import evaluate_fbt, fbt_split
from crosssell.engine.evaluation.peers import PEERS, PeerUserPopularity, implicit_available
from crosssell.engine.evaluation.personal import evaluate_personal, personal_split

PROTOCOLS = ("fbt-v1", "personal-ms", "cart-v1")
METRICS = ("hr@10", "recall@10", "ndcg@10", "precision@10", "map")

#: Our strategies compared by default under each protocol (the registry's names).
FBT_STRATEGIES = (
    "blend",
    "cocount_content",
    "cocount",
    "rules",
    "item_knn",
    "item_bm25",
    "item_asymmetric",
    "content",
    "content_similar",
    "category_popularity",
    "popularity",
)
PERSONAL_STRATEGIES = ("ease", "user_knn")
#: Strategies evaluated on the cold slice (only content can serve hidden products).
COLD_STRATEGIES = (
    "blend",
    "cocount_content",
    "content",
    "content_similar",
    "category_popularity",
    "popularity",
)
FBT_PEERS = ("peer-popularity", "peer-cocount", "peer-cosine", "peer-implicit-cosine")


def _log(msg: str, stream: TextIO | None) -> None:
    if stream is not None:
        print(msg, file=stream, flush=True)


def _row(
    strategy: str, slice_: str, peer: bool, default: bool, res: dict[str, float]
) -> dict[str, Any]:
    row: dict[str, Any] = {"strategy": strategy, "slice": slice_, "peer": peer, "default": default}
    for m in METRICS:
        v = res.get(m, float("nan"))
        row[m] = None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 6)
    row["fit_seconds"] = round(res.get("fit_seconds", 0.0), 3)
    row["queries"] = int(res.get("queries", 0))
    return row


def run_protocol(
    products: str | Path | None,
    purchases: str | Path,
    protocol: str,
    strategies: Sequence[str] | None = None,
    slices: Sequence[str] = ("all", "cold"),
    peers: bool = True,
    progress: TextIO | None = sys.stderr,
    build: Callable[[str], ItemRecommender | UserRecommender] | None = None,
) -> dict[str, Any]:
    """Evaluate strategies (and the peers) under ``protocol`` on an interchange data set.

    Parameters
    ----------
    products, purchases
        The two interchange files (``products`` may be ``None``: no content).
    protocol
        ``"fbt-v1"``, ``"personal-ms"`` or ``"cart-v1"``.
    strategies
        Registry names or dotted paths (default: every strategy that fits the protocol); under
        ``cart-v1``, names of :data:`~crosssell.engine.evaluation.cart.CART_STRATEGIES`.
    slices
        FBT-v1 slices: ``"all"`` and/or ``"cold"``.
    peers
        Also run the PROTOCOL.md peers (implicit's is skipped, with a note, when missing).
    progress
        Stream for progress lines (``None``: silent).
    build
        Strategy factory (default: :func:`crosssell.engine.registry.build_strategy`).

    Returns
    -------
    dict
        ``{"protocol", "dataset", "results": [...], "notes": [...]}``, one result per
        strategy and slice.
    """
    from crosssell.engine.registry import DEFAULT_STRATEGY, DEFAULT_USER_STRATEGY, build_strategy

    make = build or build_strategy
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    dataset = Path(purchases).resolve().parent.name
    t0 = time.perf_counter()
    log = read_purchases(purchases)
    catalog: Catalog | None = read_products(products) if products else None
    _log(f"read {len(log)} purchase lines in {time.perf_counter() - t0:.1f}s", progress)
    results: list[dict[str, Any]] = []
    notes: list[str] = []

    if protocol == "personal-ms":
        split_p = personal_split(log)
        names = list(strategies or PERSONAL_STRATEGIES)
        for name in names:
            est = make(name)
            if isinstance(est, ItemRecommender):
                # An item strategy answers with each customer's history as one basket.
                from crosssell.engine.wrappers import BasketAsCustomer

                est = BasketAsCustomer(est)
            if not isinstance(est, UserRecommender):
                notes.append(f"{name}: not a customer recommender, skipped under personal-ms")
                continue
            _log(f"personal-ms: {name}", progress)
            res = evaluate_personal(est, split_p)
            results.append(_row(name, "all", False, name == DEFAULT_USER_STRATEGY, res))
        if peers:
            _log("personal-ms: peer-popularity", progress)
            res = evaluate_personal(PeerUserPopularity(), split_p)
            results.append(_row("peer-popularity", "all", True, False, res))
        return {"protocol": protocol, "dataset": dataset, "results": results, "notes": notes}

    if protocol == "cart-v1":
        results, notes = _run_cart(log, catalog, strategies, peers, progress)
        return {"protocol": protocol, "dataset": dataset, "results": results, "notes": notes}

    names = list(strategies or FBT_STRATEGIES)
    for slice_ in slices:
        if slice_ not in ("all", "cold"):
            raise ValueError(f"unknown slice {slice_!r}")
        cold = slice_ == "cold"
        split = fbt_split(log, catalog, cold=cold)
        _log(
            f"fbt-v1 {slice_}: {split.train.n_orders} training orders x {split.train.n_items} "
            f"items, {len(split.query_items)} queries",
            progress,
        )
        todo = [n for n in names if not cold or strategies or n in COLD_STRATEGIES]
        for name in todo:
            est = make(name)
            if not isinstance(est, ItemRecommender):
                notes.append(f"{name}: not an item recommender, skipped under fbt-v1")
                continue
            _log(f"  {slice_}: {name}", progress)
            res = evaluate_fbt(est, split)
            results.append(_row(name, slice_, False, name == DEFAULT_STRATEGY, res))
        if not peers:
            continue
        for peer in FBT_PEERS if not cold else ("peer-popularity",):
            if peer == "peer-implicit-cosine" and not implicit_available():
                notes.append("peer-implicit-cosine skipped: the optional 'implicit' is missing")
                continue
            _log(f"  {slice_}: {peer}", progress)
            res = evaluate_fbt(PEERS[peer](), split)
            results.append(_row(peer, slice_, True, False, res))
    return {"protocol": protocol, "dataset": dataset, "results": results, "notes": notes}


def _run_cart(
    log: PurchaseLog,
    catalog: Catalog | None,
    strategies: Sequence[str] | None,
    peers: bool,
    progress: TextIO | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """CART-v1: the cart strategies, then (with ``peers``) cart_eval.py's peers."""
    from crosssell.engine.evaluation.cart import (
        CART_STRATEGIES,
        CartContext,
        cart_split,
        evaluate_cart,
    )

    split = cart_split(log, catalog)
    _log(
        f"cart-v1: {split.fbt.train.n_orders} training orders x {split.fbt.train.n_items} "
        f"items, {len(split.carts)} carts",
        progress,
    )
    ctx = CartContext(split)
    ours = [n for n, (peer, _, _) in CART_STRATEGIES.items() if not peer]
    names = list(strategies or ours)
    if peers:
        names += [n for n, (peer, _, _) in CART_STRATEGIES.items() if peer and n not in names]
    results: list[dict[str, Any]] = []
    for name in names:
        _log(f"  cart-v1: {name}", progress)
        res = evaluate_cart(ctx, name)
        peer, default, _ = CART_STRATEGIES[name]
        results.append(_row(name, "all", peer, default, res))
    return results, []


def markdown_table(report: dict[str, Any]) -> str:
    """One markdown table of a :func:`run_protocol` report (default strategy in bold)."""
    personal = report["protocol"] == "personal-ms"
    cols = (
        ["precision@10", "recall@10", "ndcg@10", "map"]
        if personal
        else ["hr@10", "ndcg@10"]
        if report["protocol"] == "cart-v1"
        else [
            "hr@10",
            "recall@10",
            "ndcg@10",
        ]
    )
    head = ["strategy", "slice", *cols, "fit s", "queries"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["results"]:
        name = f"**{r['strategy']}** (default)" if r["default"] else r["strategy"]
        if r["peer"]:
            name += " (peer)"
        vals = ["-" if r[c] is None else f"{r[c]:.4f}" for c in cols]
        lines.append(
            "| "
            + " | ".join([name, r["slice"], *vals, f"{r['fit_seconds']:.2f}", str(r["queries"])])
            + " |"
        )
    return "\n".join(lines)


def to_json(report: dict[str, Any]) -> str:
    """The report as JSON: ``protocol``, ``dataset`` and ``results`` only."""
    keep = ["strategy", "slice", "peer", "default", *METRICS, "fit_seconds"]
    return json.dumps(
        {
            "protocol": report["protocol"],
            "dataset": report["dataset"],
            "results": [{k: r[k] for k in keep} for r in report["results"]],
        },
        indent=2,
    )


def bar_chart(report: dict[str, Any], path: str | Path, metric: str = "ndcg@10") -> Path:
    """Save a bar chart of ``metric`` per strategy and slice (matplotlib, imported here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if r.get(metric) is not None]
    labels = [f"{r['strategy']} [{r['slice']}]" for r in rows]
    values = [r[metric] for r in rows]
    colors = ["#d62728" if r["default"] else "#7f7f7f" if r["peer"] else "#1f77b4" for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    ax.barh(range(len(rows)), values, color=colors)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.set_title(f"{report['protocol']} on {report['dataset']} (red: default, grey: peers)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
