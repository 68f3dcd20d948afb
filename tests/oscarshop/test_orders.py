"""Oscar's orders: recorded at ``order_placed`` (once), and backfilled in bulk with their dates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from oscar.apps.order.signals import order_placed
from oscar.core.loading import get_model

from crosssell.models import Purchase, user_customer_ref

pytestmark = pytest.mark.django_db
Order = get_model("order", "Order")


def test_order_placed_records_the_order(shop, order) -> None:
    user = shop.users[0]
    placed = order(user, [shop["Camera"], shop["T-Shirt S"], shop["Tripod"]], number="5001")
    rows = {p.product_id: p for p in Purchase.objects.filter(order_ref="5001")}
    # the size is recorded as the T-shirt, the product whose page customers see
    assert set(rows) == {shop["Camera"].pk, shop["T-Shirt"].pk, shop["Tripod"].pk}
    assert rows[shop["Tripod"].pk].unit_price == D("1249.99")
    assert rows[shop["Camera"].pk].customer_ref == user_customer_ref(user)
    assert rows[shop["Camera"].pk].purchased_at == placed.date_placed


def test_recording_is_idempotent(shop, order) -> None:
    placed = order(shop.users[1], [shop["Camera"], shop["Memory Card"]], number="5002")
    order_placed.send(sender=None, order=placed, user=placed.user)  # a retried signal
    assert Purchase.objects.filter(order_ref="5002").count() == 2


def test_backfill_loads_past_orders_with_their_dates_in_bulk(
    shop, orders, django_assert_max_num_queries
) -> None:
    Purchase.objects.all().delete()
    past = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    Order.objects.filter(number="PAST-11").update(date_placed=past)
    from crosssell.contrib.oscar.orders import backfill

    with django_assert_max_num_queries(25):  # a few queries per batch, whatever the order count
        result = backfill(batch=4)
    assert result.orders == 9
    assert (
        result.created
        == Purchase.objects.count()
        == sum(
            len({(line.product.parent_id or line.product_id) for line in o.lines.all()})
            for o in orders
        )
    )
    assert set(
        Purchase.objects.filter(order_ref="PAST-11").values_list("purchased_at", flat=True)
    ) == {past}
    again = backfill()
    assert again.created == 0


def test_backfill_command_rebuilds(shop, orders) -> None:
    from crosssell.models import Build

    Purchase.objects.all().delete()
    call_command("crosssell_oscar_backfill", "--since", "2000-01-01", verbosity=0)
    assert Purchase.objects.count() > 0
    assert Build.objects.filter(state=Build.State.LIVE).exists()


def test_a_guests_orders_count_as_one_person_by_email(shop) -> None:
    from oscar.apps.partner.strategy import Default
    from oscar.test.factories import create_order

    from crosssell.services.identity import email_key

    for number in ("G1", "G2"):
        basket = get_model("basket", "Basket").objects.create()
        basket.strategy = Default()
        basket.add_product(shop["Camera"], 1)
        create_order(number=number, basket=basket, user=None, guest_email="Guest@Example.com")
    rows = Purchase.objects.filter(order_ref__in=["G1", "G2"])
    assert {(r.customer_ref, r.identity) for r in rows} == {
        ("", f"e:{email_key('guest@example.com')}")
    }
