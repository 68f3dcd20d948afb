"""Schemathesis fuzzing of the API: hundreds of generated requests, valid and invalid, no 5xx.

The longer run is ``benchmarks/fuzz_api.py`` (see TESTING.md).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from tests.crosssell.fuzzing import fuzz, in_process_wsgi, seed_shop

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

#: Per operation and generation mode: 4 operations x 2 modes x 100 = 800 cases at most.
MAX_EXAMPLES = 100


@pytest.fixture
def unthrottled(settings: Any) -> None:
    rates = dict(settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}))
    rates.pop("crosssell", None)  # no rate for the scope: the fuzzer measures the API, not 429s
    rates.update(crosssell_events_address=None, crosssell_events_visitor=None)  # nor these
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


def test_fuzzing_finds_no_server_error(unthrottled: None) -> None:
    cache.clear()
    shop = seed_shop(seed=1)

    def cookies_for(label: str) -> dict[str, str]:
        # me/ is fuzzed signed in (as a staff customer, so the evidence is in the responses too).
        return shop.session_cookies if "/me/" in label else {}

    with in_process_wsgi() as app:
        report = fuzz(
            app,
            max_examples=MAX_EXAMPLES,
            known_ids=shop.product_ids,
            cookies_for=cookies_for,
            seed=1,
        )
    print(report.summary())
    assert report.requests >= 500, report.summary()
    assert len(report.by_operation) == 8, report.summary()  # 4 operations x positive/negative
    assert not report.server_errors, report.summary()
    assert not report.check_failures, report.summary()
    # Both valid and refused requests were exercised.
    assert report.by_status[200] > 100 and report.by_status[400] > 50, report.summary()
