"""Importer fuzzing (hypothesis): malformed interchange files are imported or refused cleanly.

A quick run in the suite; ``benchmarks/fuzz_import.py --examples N`` runs the same property
longer. The generators and the property are in ``tests/crosssell/import_fuzzing.py``.
"""

from __future__ import annotations

import gzip

import pytest
from hypothesis import HealthCheck, example, given, settings

from tests.crosssell.import_fuzzing import PURCHASE_COLUMNS, Case, Tally, cases, check, seed_base

pytestmark = pytest.mark.django_db
TALLY = Tally()
HEADER = ",".join(PURCHASE_COLUMNS).encode()


@pytest.fixture
def base() -> None:
    seed_base()


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
# Found by the fuzzer: a time zone that moves the date out of datetime's range (was OverflowError).
@example(case=Case(None, gzip.compress(b"%s\no9,c1,p1,1,,0001-01-01T00:00:00+05:00\n" % HEADER)))
@example(case=Case(None, gzip.compress(b"%s\no9,c1,p1,1,,9999-12-31T23:59:59-14:00\n" % HEADER)))
def test_malformed_files_are_imported_or_refused_cleanly(base: None, case: Case) -> None:
    check(case, TALLY)


def test_the_fuzzer_reaches_both_outcomes(base: None) -> None:
    """The generators are not all refusals (the property would be trivially true)."""
    good = ",".join(PURCHASE_COLUMNS) + "\no9,c1,p1,2,3.20,2024-03-01T10:00:00Z\no9,c1,p2,1,,\n"
    assert check(Case(None, gzip.compress(good.encode()))) == "imported"
    assert check(Case(None, gzip.compress(good.encode())[:-5])) == "refused"
    if TALLY:  # after the hypothesis test, when run in file order
        assert TALLY["imported"] > 0 and TALLY["refused"] > 0, TALLY
