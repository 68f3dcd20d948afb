"""Fuzz the interchange importer with hypothesis: a longer run than the test suite's.

    .venv/bin/python benchmarks/fuzz_import.py [--examples 2000] [--seed 0] [--json]

Uses ``DATABASE_URL`` like the shop (SQLite without it). Creates a throw-away database
(``<NAME>_fuzzimport``) with Django's test machinery, seeds three products and two purchases,
and imports ``--examples`` generated file pairs (random bytes, truncated gzip, permuted or
missing header columns, wrong field counts, huge fields, bad numbers and dates, NUL bytes,
invalid UTF-8, mixed good and bad lines: ``tests/crosssell/import_fuzzing.py``), each in a
savepoint rolled back afterwards. Every example must import (with a report that agrees with the
database) or be refused with ``ImportFormatError``/``ImportConfigError`` leaving the database
unchanged; anything else is a crash. Exit status 1 on any crash or violated invariant.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzzcommon import parse_arguments, setup_django


def main() -> int:
    args = parse_arguments(__doc__, 2000, "generated files")
    setup_django()
    import logging

    logging.getLogger("crosssell").setLevel(logging.ERROR)
    from django.db import connection
    from django.test.utils import setup_test_environment
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from tqdm import tqdm

    from tests.crosssell.import_fuzzing import Case, Tally, cases, check, seed_base

    tally = Tally()
    crashes: list[str] = []
    bar = tqdm(total=args.examples, unit="case", disable=args.quiet, file=sys.stderr)

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases())
    def run(case: Case) -> None:
        bar.update(1)
        try:
            check(case, tally)
        except Exception as exc:  # counted, not raised: the run goes on and reports them all
            tally["crashes"] += 1
            if len(crashes) < 5:
                crashes.append("".join(traceback.format_exception(exc))[-2000:])

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    if connection.vendor != "sqlite":  # not test_<NAME>, which a concurrent pytest run uses
        connection.settings_dict["TEST"]["NAME"] = f"{old_name}_fuzzimport"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    started = time.perf_counter()
    try:
        seed_base()
        run()
    finally:
        bar.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    wall = time.perf_counter() - started
    refused = {k.removeprefix("refused: "): v for k, v in tally.items() if k.startswith("refused:")}
    result: dict[str, Any] = {
        "examples": tally["imported"] + tally["refused"] + tally["crashes"],
        "imported": tally["imported"],
        "refused": tally["refused"],
        "crashes": tally["crashes"],
        "refusal_reasons": dict(sorted(refused.items(), key=lambda kv: -kv[1])),
        "database": connection.vendor,
        "seed": args.seed,
        "seconds": round(wall, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key in ("examples", "imported", "refused", "crashes", "database", "seed", "seconds"):
            print(f"{key}: {result[key]}")
        print("refusals by reason:")
        for reason, n in result["refusal_reasons"].items():
            print(f"  {n:6d}  {reason}")
    for text in crashes:
        print(text, file=sys.stderr)
    return 1 if tally["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
