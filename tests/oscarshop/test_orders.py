"""Oscar's orders: recorded at ``order_placed`` (once), and backfilled in bulk with their dates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

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


def test_order_placed_under_a_tax_charging_strategy_records_the_price_incl_tax(shop) -> None:
    from oscar.apps.partner.strategy import UK
    from oscar.test.factories import create_order

    basket = get_model("basket", "Basket").objects.create(owner=shop.users[2])
    basket.strategy = UK()  # 20% VAT, as the shop displays prices
    basket.add_product(shop["Memory Card"], 2)
    placed = create_order(number="TAX-1", basket=basket, user=shop.users[2])
    line = placed.lines.get()
    assert line.unit_price_excl_tax == D("12.50") and line.unit_price_incl_tax == D("15.00")
    row = Purchase.objects.get(order_ref="TAX-1")
    assert row.unit_price == D("15.00") and row.quantity == 2


def test_backfill_since_leaves_out_older_orders(shop, orders) -> None:
    Purchase.objects.all().delete()
    old = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    Order.objects.filter(number__in=["PAST-11", "PAST-21"]).update(date_placed=old)
    call_command("crosssell_oscar_backfill", "--since", "2025-01-01", "--no-rebuild", verbosity=0)
    refs = set(Purchase.objects.values_list("order_ref", flat=True))
    assert refs == {o.number for o in orders} - {"PAST-11", "PAST-21"}
    call_command("crosssell_oscar_backfill", "--since", "2024-03-01", "--no-rebuild", verbosity=0)
    assert set(Purchase.objects.values_list("order_ref", flat=True)) == {o.number for o in orders}


def test_backfill_counts_per_batch_not_the_whole_table(
    shop, orders, django_assert_max_num_queries
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from crosssell.contrib.oscar.orders import backfill

    Purchase.objects.filter(order_ref__in=["PAST-10", "PAST-11"]).delete()
    table = Purchase._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        result = backfill(batch=4)
    assert result.orders == 9
    assert result.created == Purchase.objects.filter(order_ref__in=["PAST-10", "PAST-11"]).count()
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and table in q["sql"]]
    assert not [sql for sql in counts if "WHERE" not in sql.upper()], counts
    assert backfill(batch=4).created == 0


def test_backfill_links_a_guests_orders_to_the_account_of_the_same_email(shop) -> None:
    """Backfilled, a signed-in order and two guest orders with its e-mail count as one person,
    exactly as the same orders recorded one by one at checkout."""
    from oscar.apps.partner.strategy import Default
    from oscar.test.factories import create_order

    from crosssell.contrib.oscar.orders import backfill
    from crosssell.services.identity import effective_identity

    user = shop.users[3]  # customer3@example.com

    def guest(number: str, product: Any) -> None:
        basket = get_model("basket", "Basket").objects.create()
        basket.strategy = Default()
        basket.add_product(product, 1)
        create_order(number=number, basket=basket, user=None, guest_email="Customer3@Example.com")

    guest("G-BEFORE", shop["Camera"])  # a guest order before the account's first order
    placed = []
    basket = get_model("basket", "Basket").objects.create(owner=user)
    basket.strategy = Default()
    basket.add_product(shop["Tripod"], 1)
    placed.append(create_order(number="SIGNED", basket=basket, user=user))
    guest("G-AFTER", shop["Memory Card"])  # and one after it
    numbers = ["G-BEFORE", "SIGNED", "G-AFTER"]

    def identities() -> set[str]:
        rows = Purchase.objects.filter(order_ref__in=numbers)
        return {effective_identity(r.identity, r.customer_ref, r.order_ref) for r in rows}

    at_checkout = identities()
    assert at_checkout == {f"u:{user_customer_ref(user)}"}
    for batch in (1, 2, 2000):  # one order per batch, split across batches, all in one
        Purchase.objects.all().delete()
        backfill(batch=batch)
        assert Purchase.objects.filter(order_ref__in=numbers).count() == 3
        assert identities() == at_checkout, batch
