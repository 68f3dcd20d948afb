"""Backfilled orders count people, as checkout does (issue 18): a guest's orders under one email
are one identity, and the account's once a customer ordered with that email, so a backfill of a
shop's history cannot publish a pair two people (or one) bought."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from crosssell.models import Purchase, Recommendation
from crosssell.services.backfill import backfill_from_queryset
from crosssell.services.build import rebuild
from crosssell.services.identity import email_key
from crosssell.services.purchases import Line, record_order
from crosssell.testing import make_product

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not apps.is_installed("shop"), reason="needs the sample shop's orders"),
]

EMAIL = "Eve@Example.com"
START = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def pair() -> tuple[Any, Any]:
    return make_product("A", price="10"), make_product("B", price="10")


def order(number: str, products: Sequence[Any], *, user: Any = None, email: str = "") -> None:
    from shop.models import Order, OrderLine

    n = Order.objects.count()
    placed = Order.objects.create(
        number=number, user=user, email=email, created_at=START + timedelta(hours=n)
    )
    for p in products:
        OrderLine.objects.create(order=placed, product=p, quantity=1, unit_price=Decimal("10"))


def backfill_command(*extra: str) -> None:
    call_command(
        "crosssell_backfill", "--model", "shop.OrderLine", "--order", "order__number",
        "--purchased-at", "order__created_at", "--customer", "order__user_id", *extra,
        verbosity=0,
    )  # fmt: skip


def published(a: Any, b: Any) -> list[dict[str, Any]]:
    """The evidence of A->B as a co-purchase in the live build after a rebuild (a fill from
    the best sellers carries zeros and is not pair information)."""
    rebuild(trigger="test")
    rows = Recommendation.objects.filter(build__state="live", source_id=a.pk, target_id=b.pk)
    return [e for e in rows.values_list("evidence", flat=True) if e.get("customers")]


def test_three_guest_orders_of_one_email_publish_no_pair(pair: tuple[Any, Any]) -> None:
    a, b = pair
    for i in range(3):  # one guest, three orders, one email (spelt three ways)
        order(f"G{i}", [a, b], email=[EMAIL, EMAIL.lower(), f" {EMAIL.upper()} "][i])
    backfill_command("--email", "order__email")
    assert set(Purchase.objects.values_list("identity", flat=True)) == {f"e:{email_key(EMAIL)}"}
    assert set(Purchase.objects.values_list("email_key", flat=True)) == {email_key(EMAIL)}
    assert published(a, b) == []


def test_without_the_email_each_guest_order_is_a_person(pair: tuple[Any, Any]) -> None:
    """What the email lookup is for: the same history without it publishes the pair."""
    a, b = pair
    for i in range(3):
        order(f"G{i}", [a, b], email=EMAIL)
    backfill_command()
    assert {e["customers"] for e in published(a, b)} == {3}


@pytest.mark.parametrize("batch_lines", [2, 1000], ids=["batches", "one-batch"])
def test_a_signed_in_order_and_two_guest_orders_of_its_email_are_one_person(
    pair: tuple[Any, Any], batch_lines: int
) -> None:
    """The guest orders come first (another batch when small): the account's order, once
    backfilled, takes them over; a later guest order counts as the account at once."""
    a, b = pair
    user = get_user_model().objects.create_user("eve", password="x")
    order("G0", [a, b], email=EMAIL)
    order("S1", [a, b], user=user, email=EMAIL.lower())
    order("X2", [a, b], email=f" {EMAIL}")  # a guest again, after the account's order
    from shop.models import OrderLine

    backfill_from_queryset(
        OrderLine.objects.all(),
        order="order__number",
        purchased_at="order__created_at",
        customer="order__user_id",
        email="order__email",
        batch_lines=batch_lines,
    )
    assert set(Purchase.objects.values_list("identity", flat=True)) == {f"u:{user.pk}"}
    assert published(a, b) == []


def test_backfilled_guest_orders_join_an_account_checkout_recorded(
    pair: tuple[Any, Any],
) -> None:
    """Identities agree with checkout's: an account that ordered with the email at checkout
    owns the backfilled guest orders of that email; the rows are what record_order writes."""
    a, b = pair
    with transaction.atomic():
        record_order("LIVE-1", [Line(a.pk), Line(b.pk)], customer_ref="77", email=EMAIL)
    order("G0", [a, b], email=EMAIL)
    order("G1", [a, b], email=EMAIL)
    order("O2", [a, b])  # no user, no email: a person of its own
    backfill_command("--email", "order__email")
    rows = dict(Purchase.objects.filter(product_id=a.pk).values_list("order_ref", "identity"))
    assert rows == {"LIVE-1": "u:77", "G0": "u:77", "G1": "u:77", "O2": "o:O2"}
    assert published(a, b) == []
