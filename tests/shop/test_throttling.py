"""The storefront's writes are rate-limited per address and per session, and a spoofed
X-Forwarded-For is not a new address (shop.throttling, crosssell.services.ratelimit)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.throttling import AnonRateThrottle

from crosssell.testing import make_product
from shop.cart import SESSION_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings: Any) -> dict[str, str]:
    settings.SHOP_RATE_LIMITS = {
        "cart-add:address": "5/minute",
        "cart-add:session": "3/minute",
        "checkout:address": "4/minute",
        "checkout:session": "2/minute",
    }
    return settings.SHOP_RATE_LIMITS


def test_cart_add_with_a_rotating_forwarded_for_gets_429(limits: Any) -> None:
    product = make_product(stock=None)
    statuses = []
    for i in range(30):
        client = Client()  # no cookie: a new session each time, only the address can count
        response = client.post(
            reverse("shop:cart-add"),
            {"product_id": product.pk},
            HTTP_X_FORWARDED_FOR=f"198.51.100.{i}",
        )
        statuses.append(response.status_code)
    assert statuses[:5] == [302] * 5
    assert set(statuses[5:]) == {429}


def test_cart_add_per_session_whatever_the_address(limits: Any) -> None:
    product = make_product(stock=None)
    client = Client()
    statuses = [
        client.post(
            reverse("shop:cart-add"), {"product_id": product.pk}, REMOTE_ADDR=f"192.0.2.{i}"
        ).status_code
        for i in range(6)
    ]
    # The first request had no session yet (the address counted it); then 3 per session.
    assert statuses == [302, 302, 302, 302, 429, 429]
    refused = client.post(reverse("shop:cart-add"), {"product_id": product.pk})
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert b"Too many requests" in refused.content
    assert client.session[SESSION_KEY] == {str(product.pk): 4}  # the refused ones added nothing


def test_checkout_is_rate_limited(limits: Any) -> None:
    product = make_product(stock=None)
    statuses = []
    for i in range(8):
        client = Client()
        client.post(reverse("shop:cart-add"), {"product_id": product.pk}, REMOTE_ADDR=f"10.0.0.{i}")
        response = client.post(
            reverse("shop:checkout"),
            {"name": "Ann", "email": "ann@example.com"},
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        )
        statuses.append(response.status_code)
    assert statuses[:4] == [302] * 4  # to the thanks page
    assert set(statuses[4:]) == {429}
    # Looking at the checkout page is not limited, only placing orders.
    assert Client().get(reverse("shop:checkout")).status_code in (200, 302)


def test_the_shop_api_ignores_a_spoofed_forwarded_for(settings: Any, monkeypatch: Any) -> None:
    # The sample shop declares NUM_PROXIES (0 by default): DRF's own anonymous throttle keys on
    # REMOTE_ADDR, not on the header a client rotates.
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == 0
    # DRF copies the rates into the class when it is imported: lower the anonymous rate there.
    rates = {**AnonRateThrottle.THROTTLE_RATES, "anon": "3/minute"}
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", rates)
    product = make_product(stock=None)
    url = reverse("shop-api-product", args=[product.pk])
    statuses = [
        Client().get(url, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(8)
    ]
    assert statuses == [200] * 3 + [429] * 5


def test_a_malformed_rate_does_not_break_the_cart(settings: Any) -> None:
    settings.SHOP_RATE_LIMITS = {"cart-add:address": "lots", "cart-add:session": "1/minute"}
    product = make_product(stock=None)
    client = Client()
    statuses = [
        client.post(reverse("shop:cart-add"), {"product_id": product.pk}).status_code
        for _ in range(3)
    ]
    assert statuses == [302, 302, 429]  # the session's limit still holds
