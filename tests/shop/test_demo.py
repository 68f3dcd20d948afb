"""The demo data generator and ``manage.py shop_demo``."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.test import override_settings

from crosssell.models import Build, Product, Purchase, Recommendation
from crosssell.services.serving import category_of, recommend
from shop import demo
from shop.models import Order, OrderLine

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def empty_shop(db: None) -> None:
    """No shop data, whatever this module's demo shop left (this test's transaction rolls the
    deletion back)."""
    demo.clear_shop()


def top(category: str) -> Product:
    product = (
        Product.objects.filter(category=category, is_active=True)
        .annotate(n=Count("crosssell_purchases"))
        .order_by("-n", "pk")
        .first()
    )
    assert product is not None
    return product


def fbt_categories(product: Product, limit: int = 4) -> set[str]:
    return {category_of(i.product) or "" for i in recommend([product.pk], limit)}


class TestStructure:
    """The generated shop has the designed co-purchase structure, and the build finds it."""

    @pytest.mark.parametrize(
        ("anchor", "complements"),
        [
            ("Photo > Cameras", {"Photo > Memory cards", "Photo > Bags"}),
            ("Coffee > Espresso machines", {"Coffee > Beans", "Coffee > Grinders"}),
            ("Outdoor > Tents", {"Outdoor > Sleeping bags", "Outdoor > Sleeping mats"}),
            ("Outdoor > Stoves", {"Outdoor > Cookware & fuel"}),
        ],
    )
    def test_anchor_lists_hold_their_complements(
        self, demo_shop: demo.Summary, anchor: str, complements: set[str]
    ) -> None:
        assert fbt_categories(top(anchor)) & complements

    def test_every_sellable_product_has_a_full_list(self, demo_shop: demo.Summary) -> None:
        live = Build.objects.get(state=Build.State.LIVE)
        assert live.counts["products"] == demo_shop.products
        for product in Product.objects.filter(is_active=True, stock__isnull=True)[:40]:
            assert len(recommend([product.pk], 4)) == 4, product

    def test_products_without_sales_get_recommendations(self, demo_shop: demo.Summary) -> None:
        unsold = Product.objects.filter(is_active=True).exclude(
            pk__in=Purchase.objects.values("product_id")
        )
        assert unsold.count() >= 3
        for product in unsold:
            assert len(recommend([product.pk], 4, category=category_of(product))) == 4

    def test_inactive_and_sold_out_products_have_sales_and_are_never_shown(
        self, demo_shop: demo.Summary
    ) -> None:
        inactive = Product.objects.get(sku__in=demo_shop.inactive)
        sold_out = Product.objects.get(sku__in=demo_shop.out_of_stock)
        assert not inactive.is_active and sold_out.stock == 0
        for product in (inactive, sold_out):
            assert Purchase.objects.filter(product=product).exists()
        shown = {i.product.pk for p in Product.objects.all()[:60] for i in recommend([p.pk], 8)}
        assert not shown & {inactive.pk, sold_out.pk}

    def test_repeat_customers_and_guests(self, demo_shop: demo.Summary) -> None:
        per_customer = (
            Purchase.objects.exclude(customer_ref="")
            .values("customer_ref")
            .annotate(orders=Count("order_ref", distinct=True))
        )
        repeat = sum(1 for row in per_customer if row["orders"] >= 2)
        assert repeat >= 0.2 * len(per_customer)
        guests = Purchase.objects.filter(customer_ref="").values("order_ref").distinct().count()
        assert 0.05 * demo_shop.orders < guests < 0.25 * demo_shop.orders

    def test_many_pairs_pass_the_privacy_threshold(self, demo_shop: demo.Summary) -> None:
        live = Build.objects.get(state=Build.State.LIVE)
        rows = Recommendation.objects.filter(build=live, evidence__co_count__gte=1)
        assert rows.count() >= demo_shop.products
        assert all(r.evidence["customers"] >= 3 for r in rows[:500])

    def test_shop_orders_match_purchases(self, demo_shop: demo.Summary) -> None:
        assert Order.objects.count() == demo_shop.orders
        assert OrderLine.objects.count() == Purchase.objects.count() == demo_shop.lines
        order = Order.objects.order_by("?").first()
        assert order is not None
        lines = {(li.product_id, li.quantity) for li in order.lines.all()}
        purchases = set(
            Purchase.objects.filter(order_ref=order.number).values_list("product_id", "quantity")
        )
        assert lines == purchases

    def test_orders_span_the_last_180_days(self, demo_shop: demo.Summary) -> None:
        times = Purchase.objects.order_by("purchased_at").values_list("purchased_at", flat=True)
        span = times.last() - times.first()  # type: ignore[operator]
        assert 150 <= span.days <= 181


class TestDeterminism:
    def test_same_seed_same_shop(self, empty_shop: None) -> None:
        demo.generate(60, 300, seed=11, now=NOW)
        first = demo.digest()
        demo.clear_shop()
        demo.generate(60, 300, seed=11, now=NOW)
        assert demo.digest() == first
        demo.clear_shop()
        demo.generate(60, 300, seed=12, now=NOW)
        assert demo.digest() != first

    def test_bad_sizes_are_refused(self, empty_shop: None) -> None:
        with pytest.raises(ValueError, match="at least 30"):
            demo.generate(10, 100)
        with pytest.raises(CommandError, match="at least 30"):
            call_command("shop_demo", "--products", "5", stdout=StringIO())


class TestCommand:
    def run(self, *args: str) -> str:
        out = StringIO()
        call_command("shop_demo", *args, stdout=out, stderr=StringIO())
        return out.getvalue()

    def test_if_empty_is_idempotent(self, empty_shop: None) -> None:
        self.run("--if-empty", "--products", "40", "--orders", "200", "--no-rebuild")
        counts = (Product.objects.count(), Purchase.objects.count(), Order.objects.count())
        assert counts[0] >= 40 and counts[1] > 200
        out = self.run("--if-empty", "--products", "80", "--orders", "500")
        assert "nothing to do" in out
        assert (Product.objects.count(), Purchase.objects.count(), Order.objects.count()) == counts
        assert not Build.objects.exists()

    def test_refuses_a_shop_with_products_unless_reset(self, empty_shop: None) -> None:
        self.run("--products", "40", "--orders", "100", "--no-rebuild", "--seed", "1")
        with pytest.raises(CommandError, match="--reset"):
            self.run("--products", "40", "--orders", "100")
        self.run("--products", "40", "--orders", "150", "--no-rebuild", "--reset", "--seed", "1")
        assert Order.objects.count() == 150

    def test_builds_and_summarises(self, empty_shop: None) -> None:
        out = self.run("--products", "60", "--orders", "400", "--seed", "2")
        assert "orders" in out and "is live" in out
        assert Build.objects.filter(state=Build.State.LIVE, trigger="demo").exists()
        assert not get_user_model().objects.filter(username="admin").exists()  # DEBUG is off

    @override_settings(DEBUG=True)
    def test_demo_admin_only_with_debug(self, empty_shop: None) -> None:
        out = self.run("--products", "40", "--orders", "100", "--no-rebuild")
        admin = get_user_model().objects.get(username="admin")
        assert admin.is_superuser and admin.check_password("admin")
        assert "admin / admin" in out
        assert Purchase.objects.filter(customer_ref=str(admin.pk)).exists()
