"""Benchmark a full rebuild on PROTOCOL.md's synthetic shop, against the floor of PostgreSQL COPY.

    .venv/bin/python benchmarks/rebuild.py --products 100000 --orders 1000000 [--json]
        [--database-url postgres://postgres@127.0.0.1:5432/NAME] [--strategy PATH_OR_NAME]
        [--bench-db crosssell_rebuild_bench] [--keep] [--reuse] [--load-only]

The script (1) creates and migrates its own database (``--bench-db`` on the server of
``--database-url``, default ``DATABASE_URL``), generates the shop with
``crosssell.engine.synthetic.make_shop`` (deterministic seed; one customer in ten is a guest)
and loads it with COPY; (2) runs ``crosssell.services.build.rebuild()`` in a fresh subprocess
that does nothing else, so its peak RSS is the rebuild's (plus the interpreter, Django, numpy
and scipy it imports); (3) times the floor: the purchases moved out by
``COPY (SELECT order_ref, customer_ref, product_id ...) TO STDOUT`` plus the rebuild's own
recommendation rows moved in again by ``COPY ... FROM STDIN`` (then deleted, untimed).

Printed (``--json``: one object): wall_seconds (the ``rebuild()`` call), peak_rss_mb,
floor_seconds, ratio (wall / floor), products, orders, lines, recommendations, strategy, and
the seconds of each stage the build reported (exclusive: ``tuning`` is the per-shop tuning
and the offline metrics, without the strategy fits timed as ``fit``), and what the tuning
chose (``CROSSSELL_TUNE``: the values, the defaults, their validation NDCG@10). The database is
dropped at the end unless ``--keep``; ``--reuse`` skips generation when a kept database of the
same size exists.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
COCOUNT = "crosssell.engine.cooccurrence.CoCount"
#: One customer in this many is a guest (empty customer reference): one customer per order.
GUEST_EVERY = 10
COPY_LINES = 200_000


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def connect(url: str, autocommit: bool = False) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=autocommit)


# --- the database and the shop ------------------------------------------------------------


def create_database(server_url: str, name: str) -> None:
    """Drop and create ``name`` (it is the benchmark's own database)."""
    with connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(server_url: str, name: str) -> None:
    with connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_exists(server_url: str, name: str) -> bool:
    with connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return row is not None


def migrate(bench_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": bench_url, "DJANGO_SETTINGS_MODULE": "shop.settings"}
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--verbosity", "0"],
        check=True,
        env=env,
        cwd=ROOT,
    )


def load_shop(bench_url: str, n_products: int, n_orders: int, seed: int, quiet: bool) -> int:
    """Generate the shop and COPY it in; returns the number of order lines."""
    from tqdm import tqdm

    sys.path.insert(0, str(ROOT))
    from crosssell.engine.synthetic import make_shop

    started = time.perf_counter()
    shop = make_shop(n_products=n_products, n_orders=n_orders, random_state=seed)
    data, content = shop.data, shop.data.content
    assert content is not None
    X = data.baskets
    log(quiet, f"generated {X.nnz:,} lines in {time.perf_counter() - started:.1f} s")
    prices = content.prices
    with connect(bench_url) as conn, conn.cursor() as cur:
        # The generated rows are consistent by construction: loading them skips the foreign-key
        # triggers (this is the benchmark's own database), which halves the load time.
        cur.execute("SET session_replication_role = replica")
        product_cols = (
            "id, sku, name, description, category, price, is_active, stock, parent_id, "
            "image_url, created_at"
        )
        with cur.copy(f"COPY crosssell_product ({product_cols}) FROM STDIN") as copy:
            copy.write(
                "".join(
                    f"{i + 1}\tSKU{i:07d}\t{content.names[i]}\t\t{content.categories[i]}\t"
                    f"{prices[i]:.2f}\tt\t\\N\t\\N\t\t2024-01-01 00:00:00+00\n"
                    for i in range(n_products)
                )
            )
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('crosssell_product', 'id'), %s)", [n_products]
        )
        # One line per (order, product), orders in time order, a minute apart.
        customers = data.customers.tolist()
        indptr, indices = X.indptr.tolist(), X.indices.tolist()
        purchase_cols = "order_ref, customer_ref, product_id, quantity, unit_price, purchased_at"
        bar = tqdm(total=X.nnz, unit="line", desc="load", disable=quiet, file=sys.stderr)
        base = 1_704_067_200  # 2024-01-01 UTC
        with cur.copy(f"COPY crosssell_purchase ({purchase_cols}) FROM STDIN") as copy:
            buf: list[str] = []
            for o in range(n_orders):
                c = customers[o]
                cref = "" if c % GUEST_EVERY == 0 else str(c + 1)
                stamp = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(base + 60 * o))
                for j in indices[indptr[o] : indptr[o + 1]]:
                    buf.append(f"ORD-{o:08d}\t{cref}\t{j + 1}\t1\t{prices[j]:.2f}\t{stamp}\n")
                if len(buf) >= COPY_LINES:
                    copy.write("".join(buf))
                    bar.update(len(buf))
                    buf = []
            copy.write("".join(buf))
            bar.update(len(buf))
        bar.close()
        conn.commit()
    # A production database is vacuumed and analysed; so is this one.
    with connect(bench_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE crosssell_product")
        conn.execute("VACUUM ANALYZE crosssell_purchase")
    log(quiet, f"loaded in {time.perf_counter() - started:.1f} s")
    return int(X.nnz)


def reset_builds(bench_url: str) -> tuple[int, int, int]:
    """Forget earlier builds (``--reuse``); returns products, orders and lines present."""
    with connect(bench_url, autocommit=True) as conn:
        conn.execute("TRUNCATE crosssell_recommendation, crosssell_build CASCADE")
        conn.execute("VACUUM ANALYZE crosssell_recommendation")
        conn.execute("VACUUM ANALYZE crosssell_build")
        row = conn.execute(
            "SELECT (SELECT count(*) FROM crosssell_product),"
            " (SELECT count(DISTINCT order_ref) FROM crosssell_purchase),"
            " (SELECT count(*) FROM crosssell_purchase)"
        ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


# --- the rebuild, in a process of its own -------------------------------------------------


def run_child(bench_url: str, strategy: str, quiet: bool) -> dict[str, Any]:
    """Run the rebuild in a fresh interpreter; returns what it printed."""
    env = {**os.environ, "DATABASE_URL": bench_url, "DJANGO_SETTINGS_MODULE": "shop.settings"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--strategy", strategy]
    if quiet:
        cmd.append("--quiet")
    out = subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def child_main(strategy: str, quiet: bool) -> int:
    """The subprocess: set Django up, time one ``rebuild()``, print JSON.

    The stages are timed by wrapping the functions the rebuild calls (and the strategy's
    ``fit`` and ``similar_items``); nothing else is changed.
    """
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection
    from tqdm import tqdm

    from crosssell.engine import ranking
    from crosssell.services import build as build_module
    from crosssell.services import ranking_step

    spent: dict[str, float] = {}
    # Exclusive times: a stage called inside another (similar_items and evidence inside the
    # ranking, the strategy's fit inside the tuning) pauses the outer one's clock.
    running: list[list[Any]] = []  # [stage, started]

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            now = time.perf_counter()
            if running:
                outer = running[-1]
                spent[outer[0]] = spent.get(outer[0], 0.0) + now - outer[1]
            running.append([name, now])
            try:
                return fn(*args, **kwargs)
            finally:
                end = time.perf_counter()
                stage, began = running.pop()
                spent[stage] = spent.get(stage, 0.0) + end - began
                if running:
                    running[-1][1] = end

        return wrapper

    for name, module, attr in [
        ("extract", build_module, "extract"),
        # the per-shop tuning (CROSSSELL_TUNE) and the offline metrics, on one held-out split
        ("tuning", build_module, "tune_and_measure"),
        ("rank", ranking_step, "compute_rows"),
        ("evidence", ranking, "pair_evidence"),
        ("write", ranking_step, "write_rows"),
        ("cart_vectors", ranking_step.cart_store, "write_cart_vectors"),
        ("publish", build_module, "finish_build"),
    ]:
        setattr(module, attr, timed(name, getattr(module, attr)))
    model = build_module.resolve_strategy(None if strategy == "default" else strategy)
    # On the class: the tuning may serve a copy with other values (the same class).
    cls = type(model)
    cls.fit = timed("fit", cls.fit)  # type: ignore[method-assign]
    cls.similar_items = timed("similar_items", cls.similar_items)  # type: ignore[method-assign]

    bar = tqdm(total=100, disable=quiet, file=sys.stderr, bar_format="{desc} {bar} {n:.0f}%")

    def progress(stage: str, fraction: float, rows: int) -> None:
        bar.set_description_str(f"{stage:8s}")
        bar.n = round(100 * fraction, 1)
        bar.set_postfix_str(f"{rows:,} rows", refresh=False)
        bar.refresh()

    backend = server_pid(connection)
    server_before = process_cpu(backend)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    build = build_module.rebuild(trigger="benchmark", strategy=model, progress=progress)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    bar.close()
    names = ["extract", "tuning", "fit", "similar_items", "evidence", "rank", "write"]
    stages = {name: spent.get(name, 0.0) for name in [*names, "cart_vectors", "publish"]}
    stages["other"] = wall - sum(stages.values())
    print(
        json.dumps(
            {
                "wall_seconds": wall,
                "peak_rss_mb": after.ru_maxrss / 1024,  # KiB on Linux
                "client_cpu_seconds": after.ru_utime
                + after.ru_stime
                - usage.ru_utime
                - usage.ru_stime,
                "server_cpu_seconds": process_cpu(backend) - server_before,
                "build": build.pk,
                "counts": build.counts,
                "strategy": build.parameters.get("strategy"),
                "stages": {k: round(v, 2) for k, v in stages.items()},
                "tuning": tuning_summary(build.metrics.get("tuning")),
            }
        )
    )
    return 0


def tuning_summary(tuning: Any) -> dict[str, Any] | None:
    """What the build's tuning chose: per widget, the chosen values and defaults, and their
    validation NDCG@10 (the trials left out)."""
    if not isinstance(tuning, dict):
        return None
    out: dict[str, Any] = {"seconds": tuning.get("seconds")}
    for part in ("product", "cart"):
        if isinstance(tuning.get(part), dict):
            out[part] = {k: v for k, v in tuning[part].items() if k != "trials"}
    if tuning.get("notes"):
        out["notes"] = tuning["notes"]
    return out


def server_pid(connection: Any) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def process_cpu(pid: int) -> float:
    """CPU seconds of a local process (the database backend), or nan if it is not local."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the floor ------------------------------------------------------------------------------


def floor(bench_url: str, build_id: int) -> dict[str, float]:
    """Seconds to COPY the purchases out and the build's recommendation rows back in."""
    rec_cols = (
        "build_id, source_id, target_id, kind, score, rank, strategy, evidence, status, "
        "created_at, updated_at"
    )
    with connect(bench_url) as conn, conn.cursor() as cur:
        # a build of its own for the copied rows (the unique constraint includes the build)
        cur.execute(
            "INSERT INTO crosssell_build (state, trigger, task_id, created_at, parameters, counts,"
            " metrics, progress, error) VALUES ('failed', 'floor', '', now(), '{}', '{}', '{}',"
            " '{}', '') RETURNING id"
        )
        floor_build = cur.fetchone()[0]
        rows = io.BytesIO()
        with cur.copy(
            f"COPY (SELECT {floor_build}, source_id, target_id, kind, score, rank, strategy,"
            " evidence, status, created_at, updated_at FROM crosssell_recommendation"
            f" WHERE build_id = {int(build_id)}) TO STDOUT"
        ) as copy:
            for block in copy:
                rows.write(block)
        conn.commit()

        backend = int(cur.execute("SELECT pg_backend_pid()").fetchone()[0])
        conn.commit()
        # read with the extraction's own libpq loop: the fastest way this client has
        from crosssell.services.extract import copy_out

        server = process_cpu(backend)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        size = sum(
            len(block)
            for block in copy_out(
                conn,
                "COPY (SELECT order_ref, customer_ref, product_id FROM crosssell_purchase)"
                " TO STDOUT",
            )
        )
        copy_out_seconds = time.perf_counter() - started

        payload = rows.getvalue()
        started = time.perf_counter()
        with cur.copy(f"COPY crosssell_recommendation ({rec_cols}) FROM STDIN") as copy:
            view = memoryview(payload)
            for start in range(0, len(payload), 1 << 20):
                copy.write(view[start : start + (1 << 20)])
        conn.commit()
        copy_in_seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        server = process_cpu(backend) - server
        client = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime

        cur.execute("DELETE FROM crosssell_recommendation WHERE build_id = %s", [floor_build])
        cur.execute("DELETE FROM crosssell_build WHERE id = %s", [floor_build])
        conn.commit()
    return {
        "copy_out": copy_out_seconds,
        "copy_in": copy_in_seconds,
        "client_cpu_seconds": client,
        "server_cpu_seconds": server,
        "bytes_out": size,
        "bytes_in": len(payload),
    }


# --- the command -------------------------------------------------------------------------


def log(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument(
        "--bench-db", default="crosssell_rebuild_bench", help="the database to create"
    )
    parser.add_argument(
        "--strategy",
        default=COCOUNT,
        help='registry name, dotted path, or "default" (the served blend); default: CoCount()',
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database")
    parser.add_argument(
        "--load-only", action="store_true", help="generate and keep the database, then stop"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args.strategy, args.quiet)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("needs a PostgreSQL server: --database-url or DATABASE_URL")
    if args.products < 2 or args.orders < 1:
        parser.error("--products must be at least 2 and --orders at least 1")
    bench_url = with_database(args.database_url, args.bench_db)

    reused = False
    if args.reuse and database_exists(args.database_url, args.bench_db):
        migrate(bench_url)  # the kept schema follows today's migrations
        n_products, n_orders, lines = reset_builds(bench_url)
        reused = (n_products, n_orders) == (args.products, args.orders)
        if not reused:
            log(args.quiet, "the kept database has another size: generating anew")
    if not reused:
        create_database(args.database_url, args.bench_db)
        migrate(bench_url)
        lines = load_shop(bench_url, args.products, args.orders, args.seed, args.quiet)
    if args.load_only:
        log(args.quiet, f"{args.bench_db}: {lines:,} lines loaded and kept")
        return 0
    try:
        child = run_child(bench_url, args.strategy, args.quiet)
        os.environ["DATABASE_URL"] = bench_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        parts = floor(bench_url, child["build"])
    finally:
        if not args.keep:
            drop_database(args.database_url, args.bench_db)
    floor_seconds = parts["copy_out"] + parts["copy_in"]
    counts = child["counts"]
    result = {
        "wall_seconds": round(child["wall_seconds"], 2),
        "peak_rss_mb": round(child["peak_rss_mb"], 1),
        "floor_seconds": round(floor_seconds, 2),
        "ratio": round(child["wall_seconds"] / floor_seconds, 2),
        "products": counts["products"],
        "orders": counts["orders"],
        "lines": counts["lines"],
        "recommendations": counts["recommendations"],
        "strategy": child["strategy"],
        # CPU seconds (this client + its database backend) depend less on what else the
        # machine runs than wall seconds do
        "cpu_seconds": round(child["client_cpu_seconds"] + child["server_cpu_seconds"], 2),
        "floor_cpu_seconds": round(parts["client_cpu_seconds"] + parts["server_cpu_seconds"], 2),
        "load_average": round(os.getloadavg()[0], 1),
        "stages": child["stages"],
        "tuning": child["tuning"],
        "floor_parts": {k: round(v, 2) for k, v in parts.items()},
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['products']:,} products, {result['orders']:,} orders, "
            f"{result['lines']:,} lines -> {result['recommendations']:,} recommendations "
            f"({result['strategy']})\n"
            f"rebuild {result['wall_seconds']} s, peak RSS {result['peak_rss_mb']} MB; "
            f"floor {result['floor_seconds']} s (COPY out {parts['copy_out']:.2f} s, "
            f"in {parts['copy_in']:.2f} s): ratio {result['ratio']}\n"
            f"CPU (client + database backend): rebuild {result['cpu_seconds']} s, "
            f"floor {result['floor_cpu_seconds']} s; load average {result['load_average']}\n"
            + "\n".join(f"  {k:13s} {v:8.2f} s" for k, v in result["stages"].items())
            + f"\ntuning: {json.dumps(result['tuning'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
