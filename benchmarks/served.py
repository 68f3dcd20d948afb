"""Served-path evaluation (issue 16): what the widgets show, scored by FBT-v1 and CART-v1.

    .venv/bin/python benchmarks/served.py --data ../shared/data/groceries [--json]
        [--queries 20000] [--carts 5000] [--seed 42] [--no-decompose] [--keep]
        [--database-url postgres://postgres@127.0.0.1:5432/NAME] [--bench-db NAME]
        [--redis-url redis://127.0.0.1:6379/N]

For a data set in the interchange format (PROTOCOL.md) the script

1. computes the FBT-v1 split and the CART-v1 carts with the engine's own code
   (:func:`crosssell.engine.evaluation.cart.cart_split`);
2. creates and migrates a fresh database (``--bench-db`` on the server of ``--database-url``,
   default ``<NAME>_served``) and imports the training orders only with the project's bulk
   import (:func:`crosssell.services.importing.import_interchange`, COPY on PostgreSQL): the
   products file as it is (a product without a price gets 1.00, so that it is sellable; stock
   is left untracked), the purchase lines of the training orders as the file gives them
   (customers and dates included);
3. runs the shop's rebuild with its settings (:func:`crosssell.services.build.rebuild`);
4. asks every FBT-v1 query (or a fixed sample of ``--queries``, drawn with
   ``numpy.random.default_rng(seed)``) through the function the product widget calls,
   ``recommend([product.pk], 10, category=category_of(product))``, and every CART-v1 cart (or a
   sample of ``--carts``) through the cart widget's ``recommend(sorted(cart)[:MAX_CART], 10)``
   (``crosssell/templatetags/crosssell.py``), then scores the shown products with the
   protocols' code (a product the split does not know is a miss, as in the protocols);
5. scores the engine on the same queries: the default strategy under FBT-v1 and the default
   cart row under CART-v1; and, unless ``--no-decompose``, the engine again with what the shop
   adds, step by step (the shop's prices, the privacy threshold in the fit, the stored rows of
   ``crosssell.engine.ranking.compute_rows`` with ``CROSSSELL_LIST_LENGTH``), so the gap can be
   put down to its causes.

The database is dropped at the end unless ``--keep``; the Redis database of ``--redis-url``
(default ``REDIS_URL``; none: the process's memory) is flushed first, as it is the
benchmark's cache.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/crosssell_bench"  # the Makefile's bench server
K = 10
#: The price a product without one is given, so that the shop may show it.
FILL_PRICE = "1.00"


# --- the database ---------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql)


def create_database(server_url: str, name: str) -> None:
    """Drop and create ``name`` (the benchmark's own database)."""
    _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(server_url, f'CREATE DATABASE "{name}"')


def drop_database(server_url: str, name: str) -> None:
    _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the files the shop imports ---------------------------------------------------------------


def _reader(path: Path) -> Any:
    return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")


def write_training_files(
    products: Path, purchases: Path, training_orders: set[str], out: Path
) -> tuple[Path, Path, int]:
    """The products file (empty prices set to :data:`FILL_PRICE`) and the purchase lines of the
    training orders, as the interchange format; returns both paths and the products priced."""
    out_products, out_purchases = out / "products.csv.gz", out / "purchases.csv.gz"
    filled = 0
    with _reader(products) as fh, gzip.open(out_products, "wt", 1, "utf-8", newline="") as dst:
        reader = csv.reader(fh)
        header = next(reader)
        if "price" not in header:
            header.append("price")
        at = header.index("price")
        writer = csv.writer(dst)
        writer.writerow(header)
        for row in reader:
            row += [""] * (len(header) - len(row))
            if not row[at].strip():
                row[at] = FILL_PRICE
                filled += 1
            writer.writerow(row)
    with _reader(purchases) as fh, gzip.open(out_purchases, "wt", 1, "utf-8", newline="") as dst:
        reader = csv.reader(fh)
        header = next(reader)
        at = header.index("order_id")
        writer = csv.writer(dst)
        writer.writerow(header)
        writer.writerows(row for row in reader if row and row[at] in training_orders)
    return out_products, out_purchases, filled


# --- the evaluation -----------------------------------------------------------------------


def _log(progress: TextIO | None, message: str) -> None:
    if progress is not None:
        print(message, file=progress, flush=True)


def _ticker(
    progress: TextIO | None, what: str, total: int, every: float = 60.0
) -> Callable[[], None]:
    """A function to call once per query: logs how far it got about every ``every`` seconds."""
    started = last = time.perf_counter()
    done = 0

    def tick() -> None:
        nonlocal done, last
        now = time.perf_counter()
        if now - last >= every:
            last = now
            rate = done / (now - started)
            _log(progress, f"    {what}: {done}/{total} asked, {rate:.1f}/s")
        done += 1

    return tick


def _latency(ms: list[float]) -> dict[str, float]:
    """Count, median, 95th percentile and maximum of call times in milliseconds."""
    if not ms:
        return {"n": 0}
    import numpy as np

    p50, p95 = np.percentile(ms, [50, 95])
    return {"n": len(ms), "p50": round(p50, 1), "p95": round(p95, 1), "max": round(max(ms), 1)}


def _row(name: str, res: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = {"step": name, "ndcg@10": res["ndcg@10"], "hr@10": res["hr@10"]}
    out.update(extra)
    return out


def evaluate_served(
    products: Path,
    purchases: Path,
    queries: int | None = None,
    carts: int | None = None,
    seed: int = 42,
    decompose: bool = True,
    progress: TextIO | None = sys.stderr,
) -> dict[str, Any]:
    """Import the FBT-v1 training orders, rebuild, ask the widgets' function, score.

    Call it with Django set up on an empty, migrated database (the shop's settings apply).

    Parameters
    ----------
    products, purchases
        The interchange files of the data set.
    queries, carts
        Sample sizes of FBT-v1 queries and CART-v1 carts (``None``: all of them).
    seed
        Seed of the samples.
    decompose
        Also score the engine with the shop's additions one at a time.
    progress
        Stream for progress lines (``None``: silent).

    Returns
    -------
    dict
        ``product`` and ``cart``: the engine's and the served figures and the gap in %
        (with ``steps``, the decomposition, when asked); ``build``, ``timings``, ``notes``.
    """
    import numpy as np

    from crosssell.conf import settings
    from crosssell.engine.evaluation.cart import (
        CART_STRATEGIES,
        CartContext,
        cart_split,
        evaluate_cart,
    )
    from crosssell.engine.evaluation.data import Catalog, read_products, read_purchases
    from crosssell.engine.evaluation.fbt import (
        evaluate_fbt,
        filled_lists,
        popularity_order,
        score_lists,
        training_log,
    )
    from crosssell.engine.evaluation.served import (
        gap_percent,
        sample_carts,
        sample_queries,
        score_cart_answers,
        score_product_answers,
        with_split_training,
        with_threshold,
    )
    from crosssell.engine.ranking import EvidenceCounts, compute_rows
    from crosssell.engine.registry import DEFAULT_STRATEGY, build_strategy
    from crosssell.services.build import rebuild
    from crosssell.services.catalog import get_catalog
    from crosssell.services.importing import import_interchange
    from crosssell.services.serving import MAX_CART, category_of, recommend

    timings: dict[str, float] = {}
    notes: list[str] = []

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - started, 2)
        _log(progress, f"  {name}: {timings[name]:.1f} s")
        return value

    log = read_purchases(purchases)
    catalog = read_products(products)
    split_c = timed("split", lambda: cart_split(log, catalog))
    split = split_c.fbt
    training_orders = set(training_log(log).order_ids.tolist())
    _log(
        progress,
        f"FBT-v1: {split.train.n_orders} training orders x {split.train.n_items} items, "
        f"{len(split.query_items)} queries; CART-v1: {len(split_c.carts)} carts",
    )

    # --- the shop: import the training orders, rebuild with the shop's settings -------------
    with tempfile.TemporaryDirectory(prefix="crosssell-served-") as tmp:
        files = timed(
            "write training files",
            lambda: write_training_files(products, purchases, training_orders, Path(tmp)),
        )
        report = timed("import", lambda: import_interchange(files[0], files[1]))
    if files[2]:
        notes.append(
            f"{files[2]} of {report.products_read} products had no price in the products file: "
            f"imported at {FILL_PRICE} (stock untracked), so the shop may show them"
        )
    build = timed("rebuild", lambda: rebuild(trigger="benchmark"))

    shop = get_catalog()
    keys = shop.model._base_manager.values_list(shop.key_lookup() or "pk", "pk")
    pk_by_key = {str(k): int(pk) for k, pk in keys}
    items = split.items
    pk_of_item = np.array([pk_by_key[p] for p in items], dtype=np.int64)
    item_of_pk = {int(pk): i for i, pk in enumerate(pk_of_item.tolist())}

    # --- the product page ---------------------------------------------------------------------
    sub = sample_queries(split, queries, seed)
    if len(sub.query_items) < len(split.query_items):
        notes.append(
            f"product page: a fixed sample of {len(sub.query_items)} of the "
            f"{len(split.query_items)} FBT-v1 queries (numpy.random.default_rng({seed}))"
        )
    uniq = np.unique(sub.query_items)
    loaded = shop.load(pk_of_item[uniq].tolist())
    answers: dict[int, list[int]] = {}
    shown_by: Counter[str] = Counter()
    short = differing = 0

    miss_ms: list[float] = []  # the first ask of a product: its lists are not cached yet
    hit_ms: list[float] = []

    def ask_products() -> None:
        nonlocal short, differing
        ticker = _ticker(progress, "product page", len(sub.query_items))
        for q in sub.query_items.tolist():
            ticker()
            product = loaded[int(pk_of_item[q])]
            started = time.perf_counter()
            got = recommend([product.pk], K, category=category_of(product))
            (hit_ms if q in answers else miss_ms).append(1000 * (time.perf_counter() - started))
            shown = [item_of_pk.get(int(i.product.pk), -1) for i in got]
            short += len(shown) < K
            if answers.setdefault(q, shown) != shown:
                differing += 1
            shown_by.update(i.slot.strategy for i in got)

    timed("served product page", ask_products)
    served_p = score_product_answers(sub, answers)
    if differing:
        notes.append(f"product page: {differing} queries got another list than the same product")

    engine_p = timed(
        "engine product page", lambda: evaluate_fbt(build_strategy(DEFAULT_STRATEGY), sub)
    )

    # --- the cart -----------------------------------------------------------------------------
    sub_c = sample_carts(split_c, carts, seed)
    if len(sub_c.carts) < len(split_c.carts):
        notes.append(
            f"cart: a fixed sample of {len(sub_c.carts)} of the {len(split_c.carts)} CART-v1 "
            f"carts (numpy.random.default_rng({seed}))"
        )
    cart_answers: list[list[int]] = []
    cart_by: Counter[str] = Counter()
    cart_ms: list[float] = []

    def ask_carts() -> None:
        ticker = _ticker(progress, "cart", len(sub_c.carts))
        for cart in sub_c.carts:
            ticker()
            ids = sorted({int(pk_of_item[i]) for i in cart.tolist()})[:MAX_CART]
            started = time.perf_counter()
            got = recommend(ids, K)
            cart_ms.append(1000 * (time.perf_counter() - started))
            cart_answers.append([item_of_pk.get(int(i.product.pk), -1) for i in got])
            cart_by.update(i.slot.strategy for i in got)

    timed("served cart", ask_carts)
    served_c = score_cart_answers(sub_c, cart_answers)
    default_cart = next(n for n, (_, default, _) in CART_STRATEGIES.items() if default)
    ctx = CartContext(sub_c)
    engine_c = timed("engine cart", lambda: evaluate_cart(ctx, default_cart))
    best_peer = timed("engine cart peer", lambda: evaluate_cart(ctx, "peer-sum-conditional"))

    product: dict[str, Any] = {
        "queries": len(sub.query_items),
        "engine": engine_p,
        "served": served_p,
        "gap_percent": gap_percent(engine_p["ndcg@10"], served_p["ndcg@10"]),
        "short_lists": short,
        "shown_by": dict(shown_by.most_common()),
        "first_ask_ms": _latency(miss_ms),
        "cached_ask_ms": _latency(hit_ms),
        "engine_strategy": DEFAULT_STRATEGY,
    }
    cart: dict[str, Any] = {
        "queries": len(sub_c.carts),
        "engine": engine_c,
        "served": served_c,
        "gap_percent": gap_percent(engine_c["ndcg@10"], served_c["ndcg@10"]),
        "shown_by": dict(cart_by.most_common()),
        "ask_ms": _latency(cart_ms),
        "engine_strategy": default_cart,
        "best_peer": best_peer,
    }

    # --- where the gap comes from -------------------------------------------------------------
    if decompose:
        minimum = int(settings.MIN_CUSTOMERS)
        length = int(settings.LIST_LENGTH)
        steps = [_row(f"engine ({DEFAULT_STRATEGY}, FBT-v1)", engine_p)]
        data = sub.train
        if files[2]:
            priced = Catalog(
                catalog.product_ids,
                catalog.names,
                catalog.categories,
                np.where(np.isnan(catalog.prices), float(FILL_PRICE), catalog.prices),
            )
            data = type(data)(
                data.baskets, data.customers, data.n_customers, priced.content_for(items)
            )
            res = evaluate_fbt(build_strategy(DEFAULT_STRATEGY), _replace(sub, train=data))
            steps.append(_row(f"+ the shop's prices ({FILL_PRICE} each)", res))
        private = with_threshold(data, minimum)
        est = build_strategy(DEFAULT_STRATEGY).fit(private)
        lists = filled_lists(est, uniq, popularity_order(private))
        steps.append(
            _row(
                f"+ privacy threshold in the fit (MIN_CUSTOMERS={minimum})",
                score_lists(sub, lists, uniq),
            )
        )
        counts = EvidenceCounts(private)
        for k in sorted({K, length}):
            rows = compute_rows(private, est, k, minimum, items=uniq, counts=counts)
            stored: dict[int, list[int]] = {int(q): [] for q in uniq.tolist()}
            for s, d in zip(rows.src.tolist(), rows.dst.tolist(), strict=True):
                stored[s].append(d)
            steps.append(
                _row(
                    f"+ stored rows (compute_rows, {k} per product), first {K}",
                    score_product_answers(sub, stored),
                )
            )
        steps.append(_row("served (recommend, limit 10)", served_p))
        product["steps"] = steps

        cart_steps = [_row(f"engine ({default_cart}, CART-v1)", engine_c)]
        ctx_private = CartContext(with_split_training(sub_c, private))
        res = evaluate_cart(ctx_private, default_cart)
        label = "the shop's prices and " if files[2] else ""
        cart_steps.append(_row(f"+ {label}privacy threshold in the fit", res))
        tuned = _tuned_cart_step(ctx_private, build.parameters.get("cart"), notes)
        if tuned is not None:
            cart_steps.append(tuned)
        cart_steps.append(_row("served (recommend, limit 10)", served_c))
        cart["steps"] = cart_steps

    return {
        "dataset": purchases.resolve().parent.name,
        "product": product,
        "cart": cart,
        "build": {
            "id": build.pk,
            "parameters": build.parameters,
            "counts": build.counts,
            "metrics": build.metrics,
        },
        "settings": {
            "MIN_CUSTOMERS": int(settings.MIN_CUSTOMERS),
            "LIST_LENGTH": int(settings.LIST_LENGTH),
            "STRATEGIES": settings.STRATEGIES,
        },
        "imported": {"products": report.products_read, "lines": report.purchase_lines},
        "timings": timings,
        "notes": notes,
    }


def _tuned_cart_step(
    ctx: Any, chosen: dict[str, Any] | None, notes: list[str]
) -> dict[str, Any] | None:
    """The engine's served cart row with the cart parameters the build used (its tuning's
    choice), when they are not the row's own; ``None`` when they are, or cannot be applied."""
    from crosssell.engine.evaluation import cart as cart_eval

    names = {"shrink": "SERVED_SHRINK", "lift": "SERVED_LIFT", "length": "SERVED_LENGTH"}
    served = getattr(cart_eval, "_served", None)
    if not chosen or served is None:
        return None
    params = {k: chosen[k] for k in names if k in chosen}
    own = {k: getattr(cart_eval, v, None) for k, v in names.items()}
    if all(params[k] == own[k] for k in params):
        return None
    try:
        ranked = served(ctx, **params)
    except TypeError as exc:  # the evaluation's served row takes other parameters
        notes.append(f"cart: the build's parameters {params} could not be applied: {exc}")
        return None
    shown = cart_eval.finish(ranked, ctx.split, ctx.pop_order)
    changed = {k: f"{own[k]} -> {v}" for k, v in params.items() if v != own[k]}
    return _row(f"+ the build's cart parameters ({changed})", cart_eval.score(shown, ctx.split))


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


# --- the report -----------------------------------------------------------------------------


def _f(value: float) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    )


def markdown(result: dict[str, Any]) -> str:
    """The summary table, then the decomposition tables (when computed)."""
    name = result["dataset"]
    lines = [
        "| data set | widget | queries | engine NDCG@10 | served NDCG@10 | gap | "
        "engine HR@10 | served HR@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for widget, label in (("product", "product page"), ("cart", "cart")):
        r = result[widget]
        lines.append(
            f"| {name} | {label} ({r['engine_strategy']}) | {r['queries']:,} | "
            f"{_f(r['engine']['ndcg@10'])} | {_f(r['served']['ndcg@10'])} | "
            f"{r['gap_percent']:+.1f}% | {_f(r['engine']['hr@10'])} | "
            f"{_f(r['served']['hr@10'])} |"
        )
    for widget in ("product", "cart"):
        steps = result[widget].get("steps")
        if not steps:
            continue
        lines += [
            "",
            f"| {name}, {widget}: step | NDCG@10 | HR@10 | NDCG change |",
            "|---|---|---|---|",
        ]
        previous = None
        for s in steps:
            change = (
                "" if previous is None else f"{100 * (s['ndcg@10'] - previous) / previous:+.1f}%"
            )
            lines.append(f"| {s['step']} | {_f(s['ndcg@10'])} | {_f(s['hr@10'])} | {change} |")
            previous = s["ndcg@10"]
    lines.append("")
    lines.append(
        f"Served slots by source, product page: {result['product']['shown_by']}; "
        f"cart: {result['cart']['shown_by']}; product lists shorter than {K}: "
        f"{result['product']['short_lists']}."
    )
    p, c = result["product"], result["cart"]
    lines.append(
        f"Widget calls (ms, p50/p95/max): product page, first ask of a product "
        f"{_ms(p['first_ask_ms'])}, asked again (cached) {_ms(p['cached_ask_ms'])}; "
        f"cart {_ms(c['ask_ms'])}."
    )
    tuning = (result["build"].get("metrics") or {}).get("tuning") or {}
    for part, t in tuning.items():
        if isinstance(t, dict) and "chosen" in t:
            lines.append(
                f"The build's tuning ({part}): chose {t['chosen']} (validation NDCG@10 "
                f"{t.get('ndcg@10')}), defaults {t.get('defaults')} "
                f"({t.get('default_ndcg@10')})."
            )
    lines += [f"- {n}" for n in result["notes"]]
    return "\n".join(lines)


def _ms(lat: dict[str, float]) -> str:
    if not lat.get("n"):
        return "-"
    return f"{lat['p50']:.0f}/{lat['p95']:.0f}/{lat['max']:.0f} ({lat['n']:,} calls)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a data set folder")
    parser.add_argument("--queries", type=int, default=None, help="FBT-v1 queries sampled")
    parser.add_argument("--carts", type=int, default=None, help="CART-v1 carts sampled")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_URL,
        help=f"the server and base name (default: DATABASE_URL, else {DEFAULT_URL})",
    )
    parser.add_argument("--bench-db", default=None, help="database name (default <NAME>_served)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    parser.add_argument("--no-decompose", action="store_true", help="no decomposition")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("needs a PostgreSQL server: --database-url or DATABASE_URL")
    products, purchases = args.data / "products.csv.gz", args.data / "purchases.csv.gz"
    for path in (products, purchases):
        if not path.is_file():
            parser.error(f"{path} is missing")
    name = args.bench_db or urlsplit(args.database_url).path.lstrip("/") + "_served"

    create_database(args.database_url, name)
    os.environ["DATABASE_URL"] = with_database(args.database_url, name)
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connections

    try:
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        print(f"migrated {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        cache.clear()  # the benchmark's own cache database
        result = evaluate_served(
            products, purchases, args.queries, args.carts, args.seed, not args.no_decompose
        )
    finally:
        connections.close_all()
        if not args.keep:
            drop_database(args.database_url, name)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
