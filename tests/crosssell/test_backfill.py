"""Backfilling purchases from the shop's own order tables (the sample shop's Order/OrderLine)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from crosssell.models import Purchase
from crosssell.services.backfill import BackfillError, backfill_from_queryset
from crosssell.services.purchases import Line, record_order
from crosssell.testing import make_product

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not apps.is_installed("shop"), reason="needs the sample shop's orders"),
]

LOOKUPS = {
    "order": "order__number",
    "product": "product_id",
    "quantity": "quantity",
    "unit_price": "unit_price",
    "purchased_at": "order__created_at",
    "customer": "order__user_id",
}


@pytest.fixture
def history() -> dict[str, Any]:
    """Three past orders: a customer's two, a guest's one."""
    from shop.models import Order, OrderLine

    user = get_user_model().objects.create_user("ann", password="x")
    kettle, tea, mug = (
        make_product(n, price=p) for n, p in [("Kettle", "30"), ("Tea", "4.5"), ("Mug", "6")]
    )
    when = [datetime(2023, 1, 5, 9, 30, tzinfo=UTC), datetime(2023, 2, 1, tzinfo=UTC),
            datetime(2024, 7, 14, 18, 0, tzinfo=UTC)]  # fmt: skip
    orders = [
        Order.objects.create(number="A-1", user=user, created_at=when[0]),
        Order.objects.create(number="A-2", user=user, created_at=when[1]),
        Order.objects.create(number="G-1", created_at=when[2]),
    ]
    for order, lines in zip(
        orders,
        [
            [(kettle, 1, "29.00"), (tea, 3, "4.50")],
            [(mug, 2, "6.00")],
            [(kettle, 1, "30.00"), (mug, 1, "6.00")],
        ],
        strict=True,
    ):
        for product, quantity, price in lines:
            OrderLine.objects.create(
                order=order, product=product, quantity=quantity, unit_price=Decimal(price)
            )
    return {"user": user, "kettle": kettle, "tea": tea, "mug": mug, "when": when}


def test_backfill_keeps_dates_customers_and_prices(history: dict[str, Any]) -> None:
    from shop.models import OrderLine

    report = backfill_from_queryset(OrderLine.objects.all(), **LOOKUPS, progress=True)

    assert (report.lines, report.orders, report.orders_recorded, report.orders_skipped) == (
        5,
        3,
        3,
        0,
    )
    assert report.purchases_inserted == Purchase.objects.count() == 5
    rows = {(p.order_ref, p.product_id): p for p in Purchase.objects.all()}
    tea = rows["A-1", history["tea"].pk]
    assert (tea.quantity, tea.unit_price, tea.purchased_at) == (
        3,
        Decimal("4.50"),
        history["when"][0],
    )
    assert tea.customer_ref == str(history["user"].pk)
    guest = rows["G-1", history["mug"].pk]
    assert guest.customer_ref == "" and guest.purchased_at == history["when"][2]


def test_backfill_is_idempotent_and_skips_orders_already_recorded(history: dict[str, Any]) -> None:
    from shop.models import OrderLine

    # Checkout recorded one order already (its own way): the backfill leaves it alone.
    record_order("A-2", [Line(history["mug"].pk, 5)], customer_ref="someone")
    report = backfill_from_queryset(OrderLine.objects.all(), **LOOKUPS, batch_lines=1)
    assert (report.orders_recorded, report.orders_skipped, report.purchases_inserted) == (2, 1, 4)
    assert Purchase.objects.get(order_ref="A-2").quantity == 5

    again = backfill_from_queryset(OrderLine.objects.all(), **LOOKUPS)
    assert (again.orders_recorded, again.orders_skipped, again.purchases_inserted) == (0, 3, 0)
    assert Purchase.objects.count() == 5


def test_backfill_of_a_period_only(history: dict[str, Any]) -> None:
    from shop.models import OrderLine

    qs = OrderLine.objects.filter(order__created_at__year=2023)
    report = backfill_from_queryset(qs, **LOOKUPS)
    assert report.orders_recorded == 2
    assert set(Purchase.objects.values_list("order_ref", flat=True)) == {"A-1", "A-2"}


def test_a_bad_lookup_writes_nothing(history: dict[str, Any]) -> None:
    from shop.models import OrderLine

    with pytest.raises(BackfillError, match="order__reference"):
        backfill_from_queryset(OrderLine.objects.all(), **{**LOOKUPS, "order": "order__reference"})
    assert Purchase.objects.count() == 0


def test_the_command(history: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model", "shop.OrderLine", "--order", "order__number",
            "--purchased-at", "order__created_at", "--customer", "order__user_id"]  # fmt: skip
    call_command("crosssell_backfill", *args, verbosity=0)
    assert Purchase.objects.count() == 5
    assert (
        Purchase.objects.get(order_ref="G-1", product=history["kettle"]).purchased_at
        == (history["when"][2])
    )
    call_command("crosssell_backfill", *args)
    assert "3 already recorded" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no such field"):
        call_command("crosssell_backfill", "--model", "shop.OrderLine", "--order", "nope")
    with pytest.raises(CommandError):
        call_command("crosssell_backfill", "--model", "shop.Nothing", "--order", "order__number")
