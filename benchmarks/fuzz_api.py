"""Fuzz the crosssell REST API with schemathesis: a longer run than the test suite's.

    .venv/bin/python benchmarks/fuzz_api.py [--examples 400] [--seed 0] [--json]

Uses ``DATABASE_URL``/``REDIS_URL`` like the shop (SQLite and a local-memory cache without
them). Creates a throw-away database (``<NAME>_fuzzbench``) with Django's test machinery, seeds a
random catalogue, order history and live build, and sends ``--examples`` generated cases per
operation and generation mode (4 operations x positive/negative) to Django's WSGI handler in
process, loading the schema from ``/api/schema/``. Every response goes through schemathesis's
checks; a 5xx is always a failure. The cache keys live under a prefix of their own, deleted at
the end. Exit status 1 when there was a 5xx or a check failure.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzzcommon import parse_arguments, setup_django


def main() -> int:
    args = parse_arguments(__doc__, 400, "per operation and mode")
    setup_django()
    import logging

    # Thousands of deliberate 4xx would each log a warning; errors (5xx) still show.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    from django.conf import settings
    from django.db import connection
    from django.test.utils import override_settings, setup_test_environment
    from tqdm import tqdm

    from tests.crosssell.fuzzing import fuzz, in_process_wsgi, seed_shop

    prefix = f"fuzz-{uuid.uuid4().hex[:12]}"
    caches = {alias: {**conf, "KEY_PREFIX": prefix} for alias, conf in settings.CACHES.items()}
    drf: dict[str, Any] = settings.REST_FRAMEWORK
    rates = dict(drf.get("DEFAULT_THROTTLE_RATES") or {})
    rates.pop("crosssell", None)  # measure the API, not the throttle
    rest = {**drf, "DEFAULT_THROTTLE_RATES": rates}

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    if connection.vendor != "sqlite":  # not test_<NAME>, which a concurrent pytest run uses
        connection.settings_dict["TEST"]["NAME"] = f"{old_name}_fuzzbench"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    bar = tqdm(total=6 * args.examples, unit="req", disable=args.quiet, file=sys.stderr)
    try:
        with override_settings(CACHES=caches, REST_FRAMEWORK=rest):
            shop = seed_shop(seed=args.seed)
            started = time.perf_counter()
            with in_process_wsgi() as app:
                report = fuzz(
                    app,
                    max_examples=args.examples,
                    known_ids=shop.product_ids,
                    cookies_for=lambda label: shop.session_cookies if "/me/" in label else {},
                    seed=args.seed,
                    progress=lambda n: bar.update(n - bar.n),
                )
            wall = time.perf_counter() - started
            _delete_keys(prefix)
    finally:
        bar.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)

    result: dict[str, Any] = {
        "requests": report.requests,
        "by_operation": dict(report.by_operation),
        "by_status": {str(k): v for k, v in sorted(report.by_status.items())},
        "server_errors": len(report.server_errors),
        "check_failures": len(report.check_failures),
        "wall_seconds": round(wall, 1),
        "database": connection.vendor,
        "cache": str(settings.CACHES["default"]["BACKEND"]).rsplit(".", 1)[-1],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(report.summary())
        print(f"{result['wall_seconds']} s on {result['database']} with {result['cache']}")
    return 1 if report.server_errors or report.check_failures else 0


def _delete_keys(prefix: str) -> None:
    """Delete this run's cache keys (the cache generation key never expires by itself)."""
    from django.core.cache import cache

    backend: Any = cache
    client = getattr(getattr(backend, "_cache", None), "get_client", None)
    if client is None:
        return  # local memory: gone with the process
    redis = client(write=True)
    for key in redis.scan_iter(match=f"{prefix}:*"):
        redis.delete(key)


if __name__ == "__main__":
    sys.exit(main())
