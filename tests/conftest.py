"""Shared fixtures. Tests run against PostgreSQL and Redis when DATABASE_URL/REDIS_URL are set
(``make test`` sets them); the engine tests need neither."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is absent (real data sets)")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    """The folder of the real data sets (licences forbid copying them into the project)."""
    return SHARED_DATA
