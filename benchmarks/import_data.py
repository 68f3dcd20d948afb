"""Benchmark ``crosssell_import``: a data set in the interchange format into a fresh PostgreSQL DB.

    .venv/bin/python benchmarks/import_data.py --data ../shared/data/instacart [--json]
        [--database-url postgres://postgres@127.0.0.1:5432/NAME]

The database server comes from ``--database-url`` (default: ``DATABASE_URL``, else
``postgres://postgres@127.0.0.1:5432/crosssell_bench``); the benchmark
creates and migrates ``<NAME>_importbench`` on it with Django's test-database machinery, times
one ``import_interchange()`` of products and purchases, and drops the database. Reported: the
purchase lines, wall seconds of the import, lines per second and the peak RSS of this process.

``--floor`` also times the floor: the same purchase rows, already parsed and resolved, moved by
a bare ``COPY`` into the same table (same indexes, foreign key checked), then rolled back.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/crosssell_bench"  # the Makefile's bench server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/instacart")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_URL,
        help=f"the server and base name (default: DATABASE_URL, else {DEFAULT_URL})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--floor", action="store_true", help="also time a bare COPY of the rows")
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("needs a PostgreSQL server: --database-url or DATABASE_URL")
    products, purchases = args.data / "products.csv.gz", args.data / "purchases.csv.gz"
    for path in (products, purchases):
        if not path.is_file():
            parser.error(f"{path} is missing")

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from crosssell.services.importing import import_interchange

    old_name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = f"{old_name}_importbench"
    setup = time.perf_counter()
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    log(args, f"created and migrated a fresh database in {time.perf_counter() - setup:.1f} s")
    try:
        started = time.perf_counter()
        report = import_interchange(products, purchases, progress=not args.quiet)
        wall = time.perf_counter() - started
        floor = copy_floor() if args.floor else None
    finally:
        teardown = time.perf_counter()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        log(args, f"dropped it in {time.perf_counter() - teardown:.1f} s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {
        "lines": report.purchase_lines,
        "wall_seconds": round(wall, 2),
        "lines_per_second": round(report.purchase_lines / wall),
        "peak_rss_mb": round(peak_mb, 1),
    }
    if floor is not None:
        result["copy_floor_seconds"] = round(floor, 2)
    if args.json:
        print(json.dumps(result))
    else:
        print(report.summary())
        print(
            f"{result['lines']:,} purchase lines in {result['wall_seconds']} s: "
            f"{result['lines_per_second']:,} lines/s, peak RSS {result['peak_rss_mb']} MB"
        )
        if floor is not None:
            print(f"floor: a bare COPY of the same rows into the same table takes {floor:.1f} s")
    return 0


def log(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def copy_floor() -> float:
    """Seconds to COPY the imported purchase rows back into their emptied table (rolled back)."""
    from django.db import connection, transaction

    from crosssell.models import Purchase

    table = connection.ops.quote_name(Purchase._meta.db_table)
    columns = "order_ref, customer_ref, product_id, quantity, unit_price, purchased_at"
    data = io.BytesIO()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY (SELECT {columns} FROM {table}) TO STDOUT") as copy:
            for block in copy:
                data.write(block)
        try:
            with transaction.atomic():
                cursor.execute(f"TRUNCATE {table}")
                started = time.perf_counter()
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    view = data.getbuffer()
                    for offset in range(0, len(view), 1 << 20):
                        copy.write(view[offset : offset + (1 << 20)])
                    del view
                connection.check_constraints()
                seconds = time.perf_counter() - started
                raise _Rollback
        except _Rollback:
            pass
    return seconds


class _Rollback(Exception):
    pass


if __name__ == "__main__":
    sys.exit(main())
