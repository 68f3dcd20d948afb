"""The catalog: one value per product through multi-valued relations, the database filter and
the Python reading agreeing, and money formatting.

The multi-valued tests need the swapped shop (``tests.swapshop``: items with many-to-many
categories and several stock records each); they run under
``DJANGO_SETTINGS_MODULE=tests.settings_swapped`` (``make test``'s second run).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.template import Context, Template
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, Purchase, Recommendation
from crosssell.services.build import rebuild
from crosssell.services.catalog import (
    MONEY_SAMPLE,
    Catalog,
    FieldCatalog,
    default_format_money,
    format_money,
    get_catalog,
)
from crosssell.services.extract import extract
from crosssell.services.serving import recommend
from crosssell.testing import buy, make_product
from tests.swapshop.helpers import MULTI_FIELDS, SWAPPED
from tests.swapshop.helpers import item as _item

pytestmark = pytest.mark.django_db
swapped_only = pytest.mark.skipif(not SWAPPED, reason="needs tests.settings_swapped (swapshop)")


#: The swapped shop's mapping, with price, stock and category read through its relations.
def money_with_pounds(amount: Decimal) -> str:
    """A shop's own formatter (named by dotted path in a test)."""
    return f"£{amount:,.2f}"


@pytest.fixture
def multi() -> Iterator[dict[str, Any]]:
    """Items covering every case of the rules: several stock records, several categories, no
    stock record, a zero price beside a real one, stock not tracked, all stock zero."""
    d = Decimal
    with override_settings(CROSSSELL_PRODUCT_FIELDS=MULTI_FIELDS):
        yield {
            "two_offers": _item(
                "A", offers=[(d("12.00"), 3), (d("9.50"), 0)], categories=["Photo", "Sale"]
            ),
            "zero_stock": _item("B", offers=[(d("5.00"), 0), (d("6.00"), 0)], categories=["Photo"]),
            "untracked": _item("C", offers=[(d("7.00"), None)], categories=["Coffee", "Photo"]),
            "no_offer": _item("D", categories=["Coffee"]),
            "free_and_paid": _item("E", offers=[(d("0.00"), 5), (d("8.00"), 5)]),
            "null_price": _item("F", offers=[(None, 5)], categories=["Coffee"]),
            "unlisted": _item("G", listed=False, offers=[(d("4.00"), 9)], categories=["Coffee"]),
            "mixed_stock": _item(
                "H", offers=[(d("3.00"), None), (d("3.50"), 2)], categories=["Garden", "Photo"]
            ),
            "plain": _item("I", offers=[(d("20.00"), 1)], categories=["Coffee"]),
            "plain2": _item("J", offers=[(d("21.00"), 4)], categories=["Coffee"]),
        }


@swapped_only
def test_one_value_per_product_by_the_documented_rules(multi: dict[str, Any]) -> None:
    catalog = get_catalog()
    loaded = catalog.load([p.pk for p in multi.values()])
    a = loaded[multi["two_offers"].pk]
    assert catalog.price_of(a) == Decimal("9.50")  # the lowest price
    assert catalog.read(a, "stock") == 3  # the summed stock
    assert catalog.category_of(a) == "Photo"  # the category with the lowest primary key
    assert catalog.categories_of(a) == ["Photo", "Sale"]
    c = loaded[multi["untracked"].pk]
    # "Photo" was created before "Coffee": the lowest primary key, not the order of adding
    assert catalog.read(c, "stock") is None and catalog.category_of(c) == "Photo"
    h = loaded[multi["mixed_stock"].pk]
    assert catalog.read(h, "stock") == 2 and catalog.price_of(h) == Decimal("3.00")
    assert catalog.category_of(h) == "Photo"  # "Photo" was created before "Garden"
    d = loaded[multi["no_offer"].pk]
    assert catalog.read(d, "price") is None and catalog.price_of(d) == 0
    # A product the shop loaded itself (not through the catalog) reads the same values.
    assert catalog.price_of(type(a).objects.get(pk=a.pk)) == Decimal("9.50")


@swapped_only
def test_database_filter_and_python_reading_agree(multi: dict[str, Any]) -> None:
    catalog = get_catalog()
    everything = list(catalog.products())
    assert len(everything) == len({p.pk for p in everything}) == len(multi)  # one row each
    by_python = {p.pk for p in everything if catalog.is_sellable(p)}
    by_database = set(catalog.products().filter(catalog.sellable_q()).values_list("pk", flat=True))
    assert by_database == by_python
    names = {k for k, p in multi.items() if p.pk in by_python}
    assert names == {"two_offers", "untracked", "mixed_stock", "plain", "plain2"}
    # Through a relation (a recommendation's target, a purchase's product) the same set.
    for i, product in enumerate(multi.values()):
        buy(f"o{i}", f"c{i}", product)
    through = set(
        Purchase.objects.filter(catalog.sellable_q("product__")).values_list(
            "product_id", flat=True
        )
    )
    assert through == by_python
    assert Purchase.objects.filter(catalog.sellable_q("product__")).count() == len(by_python)
    assert catalog.sellable_products().count() == len(by_python)


@swapped_only
def test_loading_products_costs_one_query_whatever_the_relations(multi: dict[str, Any]) -> None:
    catalog = get_catalog()
    with CaptureQueriesContext(connection) as queries:
        loaded = catalog.load([p.pk for p in multi.values()])
        values = [
            (catalog.is_sellable(p), catalog.price_of(p), catalog.category_of(p))
            for p in loaded.values()
        ]
    assert len(queries) == 1 and len(values) == len(multi)
    with CaptureQueriesContext(connection) as queries:
        rows = list(catalog.content_rows())
    assert len(queries) == 1
    assert [r[0] for r in rows] == sorted(p.pk for p in multi.values())
    assert dict((r[0], r[3]) for r in rows)[multi["two_offers"].pk] == "Photo"


@swapped_only
def test_category_filter_matches_the_one_category(multi: dict[str, Any]) -> None:
    catalog = get_catalog()
    photo = set(catalog.products().filter(catalog.category_q("Photo")).values_list("pk", flat=True))
    expected = {multi[k].pk for k in ("two_offers", "zero_stock", "untracked", "mixed_stock")}
    assert photo == expected


@swapped_only
def test_rebuild_and_widgets_with_several_categories_and_stock_records(
    multi: dict[str, Any],
) -> None:
    a, c, h, i, j = (
        multi[k] for k in ("two_offers", "untracked", "mixed_stock", "plain", "plain2")
    )
    for n in range(4):
        buy(f"x{n}", f"k{n}", a, c, h)
        buy(f"y{n}", f"m{n}", i, j, a)
    ex = extract()
    assert len(ex.product_ids) == len(set(ex.product_ids.tolist())) == len(multi)
    build = rebuild(strategy=CoCount())  # failed with crosssell_rec_not_itself before
    assert build.state == Build.State.LIVE
    rows = Recommendation.objects.filter(build=build)
    assert rows.exists()
    assert not any(s == t for s, t in rows.values_list("source_id", "target_id"))
    shown = [item.product.pk for item in recommend([a.pk], 4)]
    assert shown and set(shown) <= {c.pk, h.pk, i.pk, j.pk}
    assert multi["zero_stock"].pk not in shown
    # The widget and the API show them, with the lowest price (they were empty before).
    html = Template("{% load crosssell %}{% frequently_bought_together product %}").render(
        Context({"product": a})
    )
    assert html.count('name="product_id"') == len(shown) + 1
    assert f">{format_money(Decimal('9.50'))}<" in html  # the source's lowest price
    from django.test import Client
    from django.urls import reverse

    url = reverse("crosssell-api:frequently-bought-together", kwargs={"product_id": a.pk})
    rows = Client().get(url).json()["results"]
    assert [r["id"] for r in rows] == shown
    assert {r["id"]: Decimal(r["price"]) for r in rows}[h.pk] == Decimal("3.00")


@swapped_only
@pytest.mark.parametrize("role", ["key", "parent"])
def test_key_and_parent_through_a_multi_valued_relation_are_refused(role: str) -> None:
    from django.core import checks

    fields = {**MULTI_FIELDS, role: "categories__id" if role == "parent" else "categories__name"}
    with override_settings(CROSSSELL_PRODUCT_FIELDS=fields):
        errors = [e for e in checks.run_checks() if e.id == "crosssell.E030"]
    assert len(errors) == 1 and repr(fields[role]) in errors[0].msg


# --------------------------------------------------------------------------- money


def test_default_money_is_djangos_localised_number_without_a_sign() -> None:
    with override_settings(CROSSSELL_FORMAT_MONEY=None):
        amount = Decimal("1234.5")
        assert get_catalog().format_money(amount) == default_format_money(amount)
    with override_settings(CROSSSELL_FORMAT_MONEY=None, USE_THOUSAND_SEPARATOR=False):
        assert format_money(Decimal("1234.5")) == "1234.50"
    with override_settings(
        CROSSSELL_FORMAT_MONEY=None, USE_THOUSAND_SEPARATOR=True, LANGUAGE_CODE="de"
    ):
        from django.utils import translation

        with translation.override("de"):
            assert format_money(Decimal("1234.5")) == "1.234,50"


def test_a_custom_callable_formats_every_price_and_the_bundle_total() -> None:
    path = f"{__name__}.money_with_pounds"
    with override_settings(CROSSSELL_FORMAT_MONEY=path):
        assert format_money("1234.5") == "£1,234.50"
        html = Template("{% load crosssell %}{{ amount|crosssell_money }}").render(
            Context({"amount": Decimal("3")})
        )
        assert html == "£3.00"
        main, other = make_product("Kettle", price="30.00"), make_product("Tea", price="4.50")
        for n in range(4):
            buy(f"m{n}", f"c{n}", main, other)
        rebuild(strategy=CoCount())
        page = Template("{% load crosssell %}{% frequently_bought_together product %}").render(
            Context({"product": main})
        )
    assert "£30.00" in page and "£4.50" in page and "£34.50" in page  # the total too
    assert f'data-money-sample="{money_with_pounds(MONEY_SAMPLE)}"' in page
    assert "$" not in page


def test_no_currency_sign_is_hard_coded_in_the_app() -> None:
    """No template or static file (the admin's included) and no Python code that renders money
    (the admin, the template tags, the shop integrations) writes a currency sign itself."""
    import re
    from pathlib import Path

    import crosssell

    root = Path(crosssell.__file__).parent
    # A sign before an amount: a digit, a template variable or tag ({{ / {%), a JavaScript
    # interpolation (${), a str.format or f-string field ({).
    before_amount = re.compile(r"[$£€¥₹]\s*(?:\d|\{)")
    files = sorted(p for d in ("templates", "static") for p in (root / d).rglob("*") if p.is_file())
    assert {"admin", "crosssell"} <= {p.relative_to(root).parts[1] for p in files}
    assert {".html", ".js", ".css"} <= {p.suffix for p in files}
    for path in files:
        text = path.read_text()
        for sign in ("£", "€", "¥", "₹", '"$"', "'$'"):
            assert sign not in text, f"{path.relative_to(root)} hard-codes {sign}"
        found = before_amount.findall(text)
        assert not found, f"{path.relative_to(root)} hard-codes {found}"
    code = sorted(p for d in ("admin", "templatetags", "contrib") for p in (root / d).rglob("*.py"))
    assert len(code) > 10 and any("contrib" in p.parts for p in code)
    for path in code:
        found = before_amount.findall(path.read_text())
        assert not found, f"{path.relative_to(root)} hard-codes {found}"
    for path in root.glob("templates/crosssell/*.html"):
        assert "floatformat" not in path.read_text(), f"{path.name} formats money itself"


def test_a_catalog_subclass_is_used_everywhere() -> None:
    with override_settings(CROSSSELL_CATALOG=f"{__name__}.DoubledCatalog"):
        assert type(get_catalog()).__name__ == "DoubledCatalog"
        assert isinstance(get_catalog(), Catalog)
        product = make_product("Lamp", price="10.00")
        from crosssell.services.products import price_of

        assert price_of(product) == Decimal("20.00")
    assert type(get_catalog()) is FieldCatalog


class DoubledCatalog(FieldCatalog):
    """A catalog that doubles every price (a stand-in for a shop framework's pricing)."""

    def price_of(self, product: Any) -> Decimal:
        return super().price_of(product) * 2


# --------------------------------------------------------------------------- variants


@pytest.mark.skipif(SWAPPED, reason="the swapped model has no parent field")
def test_a_variants_page_reads_its_parents_list_and_never_shows_the_parent() -> None:
    from crosssell.models import product_field

    parent_field = str(product_field("parent"))
    shirt = make_product("Shirt", price="20")
    small = make_product("Shirt S", price="20", **{parent_field: shirt})
    large = make_product("Shirt L", price="20", **{parent_field: shirt})
    tie, belt = make_product("Tie", price="15"), make_product("Belt", price="25")
    for n in range(4):  # the parent's page: bought with a tie
        buy(f"p{n}", f"c{n}", shirt, tie)
    for n in range(4):  # the small size itself, with a belt and its sibling
        buy(f"s{n}", f"d{n}", small, belt, large)
    rebuild(strategy=CoCount())
    catalog = get_catalog()
    assert catalog.parent_of(catalog.load([small.pk])[small.pk]).pk == shirt.pk
    shown = [item.product.pk for item in recommend([small.pk], 4)]
    assert tie.pk in shown and belt.pk in shown  # the parent's list and its own
    assert shirt.pk not in shown and large.pk not in shown  # nor the parent, nor a sibling
