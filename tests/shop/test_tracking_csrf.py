"""Tracking records an event only for a request that passed CSRF and succeeded (status < 400):
a forged cross-site add-to-cart records nothing and creates no session."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.sessions.models import Session
from django.test import Client

from crosssell.models import Event, Product
from crosssell.services import tracking
from shop import demo
from tests.widgets import widgets

FBT = "frequently-bought-together"


def widget_form(client: Client) -> tuple[list[int], str, str]:
    """A product page's bought-together ids, its form's impression token and CSRF token."""
    product = Product.objects.filter(is_active=True, crosssell_purchases__isnull=False).first()
    assert product is not None
    html = client.get(f"/products/{product.pk}/").content.decode()
    ids = widgets(html)[FBT].ids
    cs = re.search(r'name="cs" value="([^"]+)"', html)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert cs and csrf and ids
    return ids, cs.group(1), csrf.group(1)


def add_to_carts() -> list[int]:
    tracking.flush()
    return list(Event.objects.filter(type="add_to_cart").values_list("product_id", flat=True))


def test_a_forged_cross_site_add_to_cart_records_nothing(demo_shop: demo.Summary) -> None:
    client = Client(enforce_csrf_checks=True)
    ids, cs, csrf = widget_form(client)
    forged = client.post(
        "/cart/add/",
        {"product_id": [ids[0]], "cs": cs, "quantity": 1},
        HTTP_ORIGIN="https://evil.example",
    )
    assert forged.status_code == 403
    assert add_to_carts() == []
    assert Session.objects.count() == 0  # no session row either
    # The same post from the page itself (with its CSRF token) is recorded.
    genuine = client.post(
        "/cart/add/", {"product_id": [ids[0]], "cs": cs, "quantity": 1, "csrfmiddlewaretoken": csrf}
    )
    assert genuine.status_code == 302
    assert add_to_carts() == [ids[0]]


def test_a_failed_add_to_cart_records_nothing(demo_shop: demo.Summary, settings: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    ids, cs, csrf = widget_form(client)
    # A shown product with one that does not exist: the view answers 404, adds nothing, and
    # the shown product's add-to-cart is not recorded either.
    missing = 2**62
    gone = client.post(
        "/cart/add/", {"product_id": [ids[0], missing], "cs": cs, "csrfmiddlewaretoken": csrf}
    )
    assert gone.status_code == 404
    # Throttled: 429, no event.
    settings.SHOP_RATE_LIMITS = {"cart-add:address": "0/minute"}
    throttled = client.post(
        "/cart/add/", {"product_id": [ids[1]], "cs": cs, "csrfmiddlewaretoken": csrf}
    )
    assert throttled.status_code == 429
    assert add_to_carts() == []


def test_a_click_on_a_missing_page_records_nothing(demo_shop: demo.Summary) -> None:
    client = Client()
    product = Product.objects.filter(is_active=True, crosssell_purchases__isnull=False).first()
    assert product is not None
    html = client.get(f"/products/{product.pk}/").content.decode()
    first = widgets(html)[FBT].ids[0]
    link = re.search(rf'href="/products/{first}/\?cs=([^"&]+)&amp;csp={first}"', html)
    assert link
    Product.objects.filter(pk=first).update(is_active=False)  # its page now answers 404
    assert client.get(f"/products/{first}/?cs={link.group(1)}&csp={first}").status_code == 404
    tracking.flush()
    assert not Event.objects.filter(type="click").exists()


def test_a_refused_add_to_cart_form_records_nothing(demo_shop: demo.Summary) -> None:
    """The cart-add view says what it really added (tracking.added_to_cart): a form it refused
    (a bad quantity: 302 back to the page with a message) records no add-to-cart."""
    client = Client(enforce_csrf_checks=True)
    ids, cs, csrf = widget_form(client)
    refused = client.post(
        "/cart/add/", {"product_id": [ids[0]], "cs": cs, "quantity": 0, "csrfmiddlewaretoken": csrf}
    )
    assert refused.status_code == 302
    assert add_to_carts() == []
    # Two shown products, one of them sold out meanwhile: only the one added is recorded.
    Product.objects.filter(pk=ids[1]).update(stock=0)
    client.post(
        "/cart/add/",
        {"product_id": ids[:2], "cs": cs, "quantity": 1, "csrfmiddlewaretoken": csrf},
    )
    assert add_to_carts() == [ids[0]]
