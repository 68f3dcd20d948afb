"""In a real browser: a click on a recommended product, then a checkout, credits the order line
to the widget's impression and the visitor's variant."""

from __future__ import annotations

import re
from typing import Any

import pytest

from crosssell.models import Event, Experiment, Impression, Product, Variant
from crosssell.services import tracking
from tests.e2e.conftest import FBT, SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_click_then_checkout_is_attributed(
    live_server: Any, shop_with_build: Product, browser_page: Any
) -> None:
    page, camera = browser_page, shop_with_build
    experiment = Experiment.objects.create(name="fbt", placement="product")
    control = Variant.objects.create(experiment=experiment, name="control")
    treatment = Variant.objects.create(experiment=experiment, name="treatment")

    page.goto(f"{live_server.url}/products/{camera.pk}/")
    first = page.locator(f"{FBT} .cs-fbt-item[data-product-id]").first
    clicked = int(first.get_attribute("data-product-id"))
    link = first.locator("a.cs-name")
    assert "cs=" in (link.get_attribute("href") or "")
    link.click()
    page.wait_for_url(re.compile(rf"/products/{clicked}/\?cs="))
    page.locator("form.buy").get_by_role("button", name="Add to cart").click()
    page.wait_for_url(re.compile(rf"/products/{clicked}/"))
    page.goto(f"{live_server.url}/checkout/")
    page.fill("#id_name", "Grace Hopper")
    page.fill("#id_email", "grace@example.org")
    page.get_by_role("button", name=re.compile("Place order")).click()
    page.wait_for_url(re.compile(r"/checkout/thanks/$"))
    page.screenshot(path=str(SHOTS / "tracking-thanks.png"), full_page=True)
    number = page.locator("[data-order-number]").inner_text()

    tracking.flush()
    impression = Impression.objects.get(placement="product", sources=[camera.pk])
    assert clicked in impression.products
    assert impression.variant in (control, treatment)
    click = Event.objects.get(type=Event.Type.CLICK)
    assert click.impression == impression and click.product_id == clicked
    purchase = Event.objects.get(type=Event.Type.PURCHASE, order_ref=number)
    assert purchase.impression == impression
    assert purchase.variant == impression.variant
    assert purchase.product_id == clicked and purchase.revenue > 0
