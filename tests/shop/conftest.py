"""Fixtures of the sample shop's tests: a small generated demo shop with a live build."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache

from crosssell.services.build import rebuild
from shop import demo


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # The cache outlives a test's rolled-back transaction: never let one test see another's.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="module")
def demo_data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[demo.Summary]:
    """120 products, 1500 orders (seed 3) and a live build, committed once per module; each
    test's own changes roll back around it."""
    with django_db_blocker.unblock():
        summary = demo.generate(120, 1500, seed=3)
        rebuild(trigger="test")
    yield summary
    with django_db_blocker.unblock():
        demo.clear_shop()


@pytest.fixture
def demo_shop(demo_data: demo.Summary, db: None) -> demo.Summary:
    """The module's demo shop, inside this test's transaction."""
    return demo_data
