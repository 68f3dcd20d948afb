"""Fixtures of the browser tests: headless Debian chromium driven by Playwright, and a small
demo shop with a live build behind pytest-django's live server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connections
from django.db.models import Count

from crosssell.models import Product
from crosssell.services.build import rebuild
from shop import demo

# `make test` requires the browser (scripts/test-all.sh sets CROSSSELL_REQUIRE_BROWSER=1): a
# missing chromium or Playwright fails there; elsewhere the browser tests skip.
REQUIRED = os.environ.get("CROSSSELL_REQUIRE_BROWSER") == "1"
if REQUIRED:
    import playwright.sync_api as playwright_sync
else:
    playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FBT = '[data-crosssell="frequently-bought-together"]'


@pytest.fixture
def async_unsafe_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser_page(async_unsafe_allowed: None) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if REQUIRED:
            pytest.fail(f"{CHROMIUM} is not installed (CROSSSELL_REQUIRE_BROWSER=1)")
        pytest.skip(f"{CHROMIUM} is not installed")
    SHOTS.mkdir(exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            browser.close()
            # The test's ORM calls ran in Playwright's context, on a connection of their own
            # that pytest-django does not see: closed here, or the test database cannot be
            # dropped at the end of the session.
            connections.close_all()


@pytest.fixture
def shop_with_build(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Product:
    """A small demo shop with a live build; returns its best-selling camera."""
    # The live server's thread must not keep its connection open past the test, or the test
    # database cannot be dropped at the end of the session.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    cache.clear()
    demo.generate(120, 1500, seed=3)
    rebuild(trigger="test")
    cache.clear()
    camera = (
        Product.objects.filter(category="Photo > Cameras", is_active=True)
        .annotate(n=Count("crosssell_purchases"))
        .order_by("-n", "pk")
        .first()
    )
    assert camera is not None
    return camera
