"""The widgets (``{% load crosssell %}``): business rules, fallbacks, markup and query counts.

Products are made through ``crosssell.testing.make_product``, so these tests also run with a
swapped product model (``tests.settings_swapped``).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Model
from django.middleware.csrf import get_token
from django.template import Context, RequestContext, Template
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from crosssell.models import Purchase, Recommendation
from crosssell.services import curation
from crosssell.services.catalog import format_money
from crosssell.services.products import price_of
from tests.crosssell.widget_shop import FBT, Shop
from tests.widgets import Widget, widgets

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def shop(db: None) -> Shop:
    return Shop()


def render(source: str, **context: Any) -> str:
    request = RequestFactory().get("/somewhere/?x=1")
    request.user = context.pop("user", AnonymousUser())
    get_token(request)  # what CsrfViewMiddleware does for a page with a form
    return Template("{% load crosssell %}" + source).render(RequestContext(request, context))


def fbt(product: Model, limit: int = 4) -> Widget:
    html = render(f"{{% frequently_bought_together product limit={limit} %}}", product=product)
    return widgets(html)[FBT]


class TestFrequentlyBoughtTogether:
    def test_complements_first_never_itself_nor_unsellable(self, shop: Shop) -> None:
        w = fbt(shop.main, 4)
        assert len(w.ids) == 4
        assert set(w.ids[:3]) == {shop.b.pk, shop.c.pk, shop.d.pk}
        assert shop.main.pk not in w.ids
        assert shop.gone.pk not in w.ids  # bought together most, but inactive
        assert all(item["data-strategy"] for item in w.items)

    def test_privacy_threshold(self, shop: Shop) -> None:
        # Two customers bought main with rare: the list may show rare (its own sales and its
        # look-alikes put it there, as if those orders had bought it alone), never for that pair.
        shown = fbt(shop.main, 12).ids
        assert shown[:3] == [shop.b.pk, shop.c.pk, shop.d.pk]
        rows = Recommendation.objects.filter(source=shop.main, target=shop.rare)
        assert all(not any(r.evidence.values()) for r in rows)
        assert shop.rare.pk not in shown or rows.exists()

    def test_rejected_pair_is_never_shown(self, shop: Shop) -> None:
        curation.reject(shop.main.pk, shop.b.pk)
        cache.clear()
        ids = fbt(shop.main, 8).ids
        assert shop.b.pk not in ids
        assert set(ids[:2]) == {shop.c.pk, shop.d.pk}

    def test_pinned_comes_first(self, shop: Shop) -> None:
        curation.pin(shop.main.pk, shop.fresh.pk)
        cache.clear()
        w = fbt(shop.main, 4)
        assert w.ids[0] == shop.fresh.pk
        assert w.items[0].get("data-pinned") == "true"
        assert set(w.ids[1:]) == {shop.b.pk, shop.c.pk, shop.d.pk}

    def test_fallbacks_fill_a_product_without_sales(self, shop: Shop) -> None:
        ids = fbt(shop.fresh, 6).ids
        assert len(ids) == 6
        assert shop.fresh.pk not in ids
        assert set(ids) <= shop.sellable_ids()

    def test_fallbacks_fill_past_the_complements(self, shop: Shop) -> None:
        ids = fbt(shop.main, 8).ids
        assert len(ids) == 8
        assert set(ids[:3]) == {shop.b.pk, shop.c.pk, shop.d.pk}
        assert len(set(ids)) == 8

    def test_form_checkboxes_and_bundle_price(self, shop: Shop) -> None:
        with override_settings(CROSSSELL_ADD_TO_CART_URL="/cart/add/"):
            html = render("{% frequently_bought_together product limit=3 %}", product=shop.main)
        w = widgets(html)[FBT]
        assert w.forms[0]["action"] == "/cart/add/" and w.forms[0]["method"] == "post"
        assert any(i.get("name") == "csrfmiddlewaretoken" and i.get("value") for i in w.inputs)
        boxes = [b for b in w.checkboxes if b.get("name") == "product_id"]
        assert [int(b["value"]) for b in boxes] == [shop.main.pk, *w.ids]
        assert all("checked" in b for b in boxes)
        total = price_of(shop.main) + sum(
            (price_of(p) for p in (shop.b, shop.c, shop.d)), Decimal("0")
        )
        assert sum(int(b["data-price-cents"]) for b in boxes) == int(total * 100)
        assert f">{format_money(total)}<" in html  # the shop's money format (no sign assumed)
        assert "Add selected to cart" in html
        assert "crosssell/crosssell.js" in html

    def test_unresolvable_cart_url_renders_without_a_button(self, shop: Shop) -> None:
        with override_settings(CROSSSELL_ADD_TO_CART_URL="nowhere:cart-add"):
            html = render("{% frequently_bought_together product %}", product=shop.main)
        assert "Add selected to cart" not in html
        assert len(widgets(html)[FBT].ids) == 4

    def test_unsellable_product_keeps_its_complements_without_a_checkbox(self, shop: Shop) -> None:
        w = fbt(shop.gone, 4)
        boxes = [int(b["value"]) for b in w.checkboxes]
        assert shop.gone.pk not in boxes and shop.gone.pk not in w.ids
        assert len(w.ids) == 4

    def test_no_product_renders_nothing(self, db: None) -> None:
        assert render("{% frequently_bought_together product %}", product=None).strip() == ""


class TestOtherWidgets:
    def test_cart_recommendations_never_show_the_cart(self, shop: Shop) -> None:
        cart = [shop.main.pk, shop.b.pk]
        html = render("{% cart_recommendations ids limit=4 %}", ids=cart)
        w = widgets(html)["cart-recommendations"]
        assert len(w.ids) == 4
        assert not set(w.ids) & set(cart)
        assert shop.gone.pk not in w.ids and shop.rare.pk not in w.ids

    def test_empty_cart_renders_nothing(self, shop: Shop) -> None:
        assert render("{% cart_recommendations ids %}", ids=[]).strip() == ""

    def test_also_bought_is_never_empty(self, shop: Shop) -> None:
        w = widgets(render("{% also_bought product %}", product=shop.main))["also-bought"]
        assert len(w.ids) == 4 and shop.main.pk not in w.ids
        assert set(w.ids) <= shop.sellable_ids()

    def test_recommended_for_you(self, shop: Shop) -> None:
        user = get_user_model().objects.create_user("ann", password="x-123456789")
        Purchase.objects.create(order_ref="U1", customer_ref=str(user.pk), product=shop.main)
        Purchase.objects.create(order_ref="U2", customer_ref=str(user.pk), product=shop.b)
        cache.clear()
        html = render("{% recommended_for_you user limit=3 %}", user=user)
        w = widgets(html)["recommended-for-you"]
        assert len(w.ids) == 3
        assert shop.main.pk not in w.ids and shop.b.pk not in w.ids
        assert set(w.ids) <= shop.sellable_ids()

    def test_recommended_for_you_renders_nothing_for_a_visitor(self, shop: Shop) -> None:
        with CaptureQueriesContext(connection) as q:
            html = render("{% recommended_for_you user %}", user=AnonymousUser())
        assert html.strip() == ""
        assert len(q) == 0


WIDGETS = {
    "frequently_bought_together": "{% frequently_bought_together product limit=LIMIT %}",
    "also_bought": "{% also_bought product limit=LIMIT %}",
    "cart_recommendations": "{% cart_recommendations ids limit=LIMIT %}",
    "recommended_for_you": "{% recommended_for_you user limit=LIMIT %}",
}


class TestQueryCounts:
    def _count(self, shop: Shop, name: str, limit: int, user: Any, cold: bool) -> tuple[int, int]:
        source = WIDGETS[name].replace("LIMIT", str(limit))
        context = {"product": shop.fresh, "ids": [shop.main.pk, shop.d.pk], "user": user}
        if cold:
            cache.clear()
        else:
            render(source, **dict(context))  # warm this exact widget
        with CaptureQueriesContext(connection) as q:
            html = render(source, **dict(context))
        found = next(iter(widgets(html).values()))
        return len(q), len(found.ids)

    @pytest.mark.parametrize("name", list(WIDGETS))
    @pytest.mark.parametrize("cold", [True, False], ids=["cold-cache", "warm-cache"])
    def test_constant_whatever_the_length(self, shop: Shop, name: str, cold: bool) -> None:
        user = get_user_model().objects.create_user("bob", password="x-123456789")
        Purchase.objects.create(order_ref="B1", customer_ref=str(user.pk), product=shop.c)
        queries_2, shown_2 = self._count(shop, name, 2, user, cold)
        queries_8, shown_8 = self._count(shop, name, 8, user, cold)
        assert (shown_2, shown_8) == (2, 8)
        assert queries_2 == queries_8
        if not cold:
            assert queries_8 <= 3  # the products (and the user's purchases), from a warm cache


def test_the_tags_module_imports_no_shop_code() -> None:
    import crosssell.templatetags.crosssell as tags

    source = Path(tags.__file__).read_text()
    assert "from shop" not in source and "import shop" not in source


def test_limit_is_clamped(shop: Shop) -> None:
    assert len(fbt(shop.main, 0).ids) == 1
    with override_settings(CROSSSELL_MAX_LIMIT=5):
        assert len(fbt(shop.fresh, 50).ids) == 5
    html = render("{% frequently_bought_together product limit='x' %}", product=shop.main)
    assert len(widgets(html)[FBT].ids) == 4


def test_renders_without_a_request(shop: Shop) -> None:
    html = Template("{% load crosssell %}{% also_bought product %}").render(
        Context({"product": shop.main})
    )
    assert len(widgets(html)["also-bought"].ids) == 4
