"""Tracking in the sample shop: the visitor's cookie, clicks and add-to-carts from the widgets'
links and forms, and the order attributed at checkout. No event is written in a request."""

from __future__ import annotations

import re
from decimal import Decimal

from django.contrib.sessions.models import Session
from django.test import Client

from crosssell.models import Event, Impression, Product
from crosssell.services import tracking
from shop import demo
from tests.widgets import widgets

FBT = "frequently-bought-together"


def product_page(client: Client, demo_shop: demo.Summary) -> tuple[Product, str]:
    product = Product.objects.filter(is_active=True, crosssell_purchases__isnull=False).first()
    assert product is not None
    response = client.get(f"/products/{product.pk}/")
    assert response.status_code == 200
    return product, response.content.decode()


def test_a_visitor_who_only_looks_gets_a_cookie_and_no_session_row(
    client: Client, demo_shop: demo.Summary
) -> None:
    product, _ = product_page(client, demo_shop)
    visitor = client.cookies[tracking.COOKIE].value
    assert re.fullmatch(r"[0-9a-f]{32}", visitor)
    assert client.cookies[tracking.COOKIE]["httponly"]
    assert Session.objects.count() == 0
    again = client.get(f"/products/{product.pk}/")
    assert tracking.COOKIE not in again.cookies  # kept, not set anew
    tracking.flush()
    assert set(Impression.objects.values_list("visitor", flat=True)) == {visitor}
    assert Impression.objects.count() == 4  # two pages, two widgets each


def test_a_page_without_widgets_sets_no_cookie(client: Client, demo_shop: demo.Summary) -> None:
    product = Product.objects.filter(is_active=True).first()
    assert product is not None
    response = client.get(f"/products/{product.pk}/?widgets=0")
    assert tracking.COOKIE not in response.cookies


def test_click_then_add_then_checkout_is_attributed(
    client: Client, demo_shop: demo.Summary
) -> None:
    _, html = product_page(client, demo_shop)
    widget = widgets(html)[FBT]
    first = widget.ids[0]
    link = re.search(rf'href="(/products/{first}/\?cs=[^"&]+&amp;csp={first})"', html)
    assert link, "the item's link carries the impression"
    assert client.get(link.group(1).replace("&amp;", "&")).status_code == 200
    # A link whose product the impression did not show records nothing.
    token = re.search(r"cs=([^&\"]+)&", link.group(1)).group(1)  # type: ignore[union-attr]
    other = Product.objects.exclude(pk__in=widget.ids).filter(is_active=True).first()
    assert other is not None
    client.get(f"/products/{other.pk}/?cs={token}&csp={other.pk}")
    # The widget's form: its one impression token, and the chosen products.
    form_token = re.search(r'name="cs" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    second = widget.ids[1]
    client.post("/cart/add/", {"product_id": [second], "cs": form_token, "quantity": 1})
    tracking.flush()
    events = sorted(Event.objects.values_list("type", "product_id"))
    assert events == sorted([("click", first), ("add_to_cart", second)])
    client.post("/cart/add/", {"product_id": [first], "quantity": 1})
    response = client.post("/checkout/", {"name": "Ann", "email": "ann@example.com"})
    assert response.status_code == 302
    tracking.flush()
    bought = {
        e.product_id: e for e in Event.objects.filter(type="purchase").select_related("impression")
    }
    assert set(bought) == {first, second}
    assert all(e.impression is not None for e in bought.values())
    assert bought[second].revenue == Product.objects.get(pk=second).price * Decimal(1)
