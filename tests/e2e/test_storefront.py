"""The storefront in a real browser (headless Debian chromium): product page, bundle, cart.

Run with ``pytest -m e2e tests/e2e``. Screenshots go to ``tests/e2e/screenshots/`` (ignored by
git).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from crosssell.models import Product
from shop.models import Order
from tests.e2e.conftest import FBT, SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def money(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.]", "", text))


def test_bundle_to_cart(live_server: Any, shop_with_build: Product, browser_page: Any) -> None:
    page = browser_page
    camera = shop_with_build
    page.goto(f"{live_server.url}/")
    page.screenshot(path=str(SHOTS / "catalog.png"), full_page=True)
    assert page.locator(".product-card").count() == 24

    page.goto(f"{live_server.url}/products/{camera.pk}/")
    widget = page.locator(FBT)
    items = widget.locator(".cs-fbt-item[data-product-id]")
    assert items.count() >= 4
    ids = [int(items.nth(i).get_attribute("data-product-id")) for i in range(items.count())]
    assert camera.pk not in ids
    prices = {p.pk: p.price for p in Product.objects.filter(pk__in=[camera.pk, *ids])}
    total = widget.locator("[data-crosssell-total]")
    assert money(total.inner_text()) == sum(prices.values())
    page.screenshot(path=str(SHOTS / "product.png"), full_page=True)

    # Unticking an item updates the bundle price in place (the small vanilla-JS file).
    dropped = ids[-1]
    widget.locator(f'input[name="product_id"][value="{dropped}"]').uncheck()
    assert money(total.inner_text()) == sum(prices.values()) - prices[dropped]
    assert widget.locator("[data-crosssell-count]").inner_text() == str(len(ids))

    widget.get_by_role("button", name="Add selected to cart").click()
    page.wait_for_url(re.compile(rf"/products/{camera.pk}/$"))
    assert "Added" in page.locator(".messages").inner_text()
    chosen = {camera.pk, *ids[:-1]}
    assert page.locator("[data-cart-count]").inner_text() == str(len(chosen))

    page.goto(f"{live_server.url}/cart/")
    in_cart = {
        int(x)
        for x in page.locator(".cart-line").evaluate_all(
            "rows => rows.map(r => r.dataset.productId)"
        )
    }
    assert in_cart == chosen
    recs = page.locator('[data-crosssell="cart-recommendations"] [data-product-id]')
    assert recs.count() >= 1
    rec_ids = {int(recs.nth(i).get_attribute("data-product-id")) for i in range(recs.count())}
    assert not rec_ids & in_cart
    page.screenshot(path=str(SHOTS / "cart.png"), full_page=True)

    # Checkout, and the thank-you page.
    page.get_by_role("link", name="Checkout").click()
    page.fill("#id_name", "Ada Lovelace")
    page.fill("#id_email", "ada@example.org")
    page.screenshot(path=str(SHOTS / "checkout.png"), full_page=True)
    page.get_by_role("button", name=re.compile("Place order")).click()
    page.wait_for_url(re.compile(r"/checkout/thanks/$"))
    number = page.locator("[data-order-number]").inner_text()
    assert Order.objects.filter(number=number, lines__isnull=False).count() == len(chosen)
    page.screenshot(path=str(SHOTS / "thanks.png"), full_page=True)

    # The product page on a phone: the bundle wraps, nothing overflows sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/products/{camera.pk}/")
    assert page.locator(f"{FBT} .cs-fbt-item[data-product-id]").count() >= 4
    assert page.evaluate("document.documentElement.scrollWidth > window.innerWidth") is False
    page.screenshot(path=str(SHOTS / "product-phone.png"), full_page=True)
