"""The merchant's admin in a real browser (headless Debian chromium): reject a recommendation
and see it gone from the product page and the API, pin another and see it first; screenshots of
the overview, the product panel and a build.

Run with ``pytest -m e2e tests/e2e/test_admin.py``. Screenshots go to ``tests/e2e/screenshots/``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connections
from django.db.models import Count

from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, Product, Recommendation
from crosssell.services.build import rebuild
from shop import demo
from tests.e2e.conftest import FBT, SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PANEL = '[data-cs-kind="bought_together"]'  # the product panel's frequently-bought-together part


@pytest.fixture
def page(browser_page: Any) -> Any:
    """A wider tab than the storefront's, for the admin's tables."""
    browser_page.set_viewport_size({"width": 1360, "height": 900})
    browser_page.set_default_timeout(20_000)
    return browser_page


@pytest.fixture
def camera(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Product:
    """A demo shop with a few builds behind it and a staff user; returns its best camera."""
    # The live server's thread must not keep its connection open past the test, or the test
    # database cannot be dropped at the end of the session.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    cache.clear()
    demo.generate(120, 1500, seed=3)
    rebuild(trigger="schedule", strategy=CoCount())
    rebuild(trigger="schedule")
    User.objects.create_superuser("merchant", "merchant@example.com", "correct horse")
    cache.clear()
    best = (
        Product.objects.filter(category="Photo > Cameras", is_active=True)
        .annotate(n=Count("crosssell_purchases"))
        .order_by("-n", "pk")
        .first()
    )
    assert best is not None
    return best


def widget_ids(page: Any, base: str, product: Product) -> list[int]:
    page.goto(f"{base}/products/{product.pk}/")
    items = page.locator(f"{FBT} [data-product-id]")
    return [int(items.nth(i).get_attribute("data-product-id")) for i in range(items.count())]


def api_ids(page: Any, base: str, product: Product) -> list[int]:
    response = page.request.get(
        f"{base}/api/crosssell/products/{product.pk}/frequently-bought-together/"
    )
    assert response.ok, response.text()
    return [int(r["id"]) for r in response.json()["results"]]


def test_reject_and_pin_from_the_admin(live_server: Any, page: Any, camera: Product) -> None:
    base = live_server.url
    before = widget_ids(page, base, camera)
    assert len(before) >= 2 and api_ids(page, base, camera)[: len(before)] == before

    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "correct horse")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    # Reject what the widget shows first, from the product's admin page.
    admin_page = f"{base}/admin/crosssell/product/{camera.pk}/change/"
    page.goto(admin_page)
    slots = page.locator(f"{PANEL} .cs-slots [data-cs-target]")
    assert [int(slots.nth(i).get_attribute("data-cs-target")) for i in range(slots.count())] == (
        before[: slots.count()]
    )
    rejected = before[0]
    page.locator(f'{PANEL} .cs-slots [data-cs-target="{rejected}"] .cs-btn-reject').click()
    page.wait_for_load_state()
    assert "Rejected" in page.locator(".messagelist").inner_text()
    assert rejected not in widget_ids(page, base, camera)
    assert rejected not in api_ids(page, base, camera)

    # Pin a product the widget does not show yet: it comes first everywhere.
    shown = set(widget_ids(page, base, camera))
    candidate = (
        Recommendation.objects.filter(
            build__state=Build.State.LIVE, kind=Recommendation.Kind.BOUGHT_TOGETHER, source=camera
        )
        .exclude(target_id__in=shown | {rejected})
        .order_by("-rank")
        .values_list("target_id", flat=True)
        .first()
    )
    assert candidate is not None
    page.goto(admin_page)
    page.locator(f"{PANEL} details.cs-live-rows summary").click()
    page.locator(f'{PANEL} .cs-live-rows tr[data-cs-target="{candidate}"] .cs-btn-pin').click()
    page.wait_for_load_state()
    assert "Pinned" in page.locator(".messagelist").inner_text()
    page.locator(".field-crosssell_recommendations").screenshot(
        path=str(SHOTS / "admin-product-panel.png")
    )
    assert widget_ids(page, base, camera)[0] == candidate
    assert api_ids(page, base, camera)[0] == candidate
    assert page.locator(f'{FBT} [data-product-id="{candidate}"]').get_attribute("data-pinned")

    # The history shows both decisions; the overview shows the shop's state.
    page.goto(f"{base}/admin/crosssell/recommendation/?build=curated")
    assert page.locator("#result_list tbody tr").count() == 2
    page.goto(f"{base}/admin/crosssell/recommendation/?build=live&q={camera.sku}")
    page.screenshot(path=str(SHOTS / "admin-recommendations.png"), full_page=True)
    page.goto(f"{base}/admin/crosssell/recommendation/pin-rule/")
    page.fill("#id_min_lift", "3")
    page.get_by_role("button", name="Preview").click()
    assert page.locator(".cs-table tbody tr").count() >= 1
    page.screenshot(path=str(SHOTS / "admin-pin-rule.png"), full_page=True)
    page.goto(f"{base}/admin/crosssell/build/overview/")
    assert page.locator(".cs-coverage .cs-stat").count() == 3
    assert page.locator(".cs-metrics svg").count() >= 1
    page.screenshot(path=str(SHOTS / "admin-overview.png"), full_page=True)
    live = Build.objects.get(state=Build.State.LIVE)
    page.goto(f"{base}/admin/crosssell/build/{live.pk}/change/")
    assert page.locator(".cs-diff .cs-stat").count() == 3
    page.screenshot(path=str(SHOTS / "admin-build.png"), full_page=True)
