"""The sample shop's checkout records who ordered as one identity (issue 18): a guest's orders
under one email are one customer, and become the account's once it orders with that email."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from crosssell.models import Purchase
from crosssell.services.identity import email_key
from crosssell.testing import make_product
from shop.models import Order

pytestmark = pytest.mark.django_db


def checkout(client: Client, product_ids: list[int], email: str) -> str:
    for pid in product_ids:
        client.post(reverse("shop:cart-add"), {"product_id": pid})
    response = client.post(reverse("shop:checkout"), {"name": "Someone", "email": email})
    assert response.status_code == 302, response.content[:300]
    return Order.objects.latest("pk").number


def test_guest_checkouts_under_one_email_are_one_customer_then_the_accounts() -> None:
    a, b = make_product("Kettle"), make_product("Filters")
    guests = [
        checkout(Client(), [a.pk, b.pk], email) for email in ("eve@example.org", " EVE@example.org")
    ]
    rows = Purchase.objects.filter(order_ref__in=guests)
    key = email_key("eve@example.org")
    assert set(rows.values_list("identity", "email_key")) == {(f"e:{key}", key)}
    assert not Purchase.objects.filter(email_key__icontains="eve").exists()

    user = get_user_model().objects.create_user("eve", password="pw-123456")
    client = Client()
    client.force_login(user)
    mine = checkout(client, [a.pk, b.pk], "eve@example.org")
    # the account's order links the email: all three orders are one identity, the account's
    every = Purchase.objects.filter(order_ref__in=[*guests, mine])
    assert set(every.values_list("identity", flat=True)) == {f"u:{user.pk}"}
    # and a later guest order under that email too
    later = checkout(Client(), [a.pk], "eve@example.org")
    assert Purchase.objects.get(order_ref=later).identity == f"u:{user.pk}"
