"""OscarCatalog: Oscar's products read as Oscar shows them."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from oscar.apps.partner import strategy as oscar_strategy

from crosssell.contrib.oscar.catalog import OscarCatalog, purchase_info, shown_price
from crosssell.services.catalog import get_catalog

pytestmark = pytest.mark.django_db


def test_the_setting_selects_the_oscar_catalog(shop) -> None:
    assert isinstance(get_catalog(), OscarCatalog)


def test_database_filter_and_oscars_availability_agree_for_every_product(shop) -> None:
    catalog = get_catalog()
    in_db = set(catalog.sellable_products().values_list("pk", flat=True))
    loaded = catalog.load([p.pk for p in shop.products.values()])
    in_python = {pk for pk, p in loaded.items() if catalog.is_sellable(p)}
    assert in_db == in_python
    # and both say what Oscar's own product page says
    oscar = {
        pk for pk, p in loaded.items()
        if p.is_public and purchase_info(p).availability.is_available_to_buy
    }  # fmt: skip
    assert in_python == oscar
    names = {p.title for p in shop.products.values() if p.pk in in_db}
    assert names == {
        "Camera", "Memory Card", "Camera Bag", "Tripod", "Spare Battery", "Lens Cloth",
        "Photo Guide", "T-Shirt", "T-Shirt S",
    }  # fmt: skip


def test_a_parent_is_sellable_while_one_child_is(shop) -> None:
    catalog = get_catalog()
    small = shop["T-Shirt S"].stockrecords.get()
    small.num_in_stock = 0
    small.save()
    assert not catalog.sellable_products().filter(pk=shop["T-Shirt"].pk).exists()
    assert not catalog.is_sellable(catalog.load([shop["T-Shirt"].pk])[shop["T-Shirt"].pk])


def test_price_is_the_strategys_with_tax_as_displayed(shop, monkeypatch) -> None:
    catalog = get_catalog()
    card = catalog.load([shop["Memory Card"].pk])[shop["Memory Card"].pk]
    assert catalog.price_of(card) == D("12.50")
    # A shop whose strategy charges UK VAT shows prices including tax, and so do the widgets.
    monkeypatch.setattr(
        oscar_strategy.Selector, "strategy", lambda self, *a, **k: oscar_strategy.UK()
    )
    card = catalog.load([shop["Memory Card"].pk])[shop["Memory Card"].pk]
    assert catalog.price_of(card) == D("15.00")
    assert shown_price(purchase_info(card, oscar_strategy.US()).price) == D("12.50")


def test_parent_price_is_oscars_from_price(shop) -> None:
    catalog = get_catalog()
    shirt = catalog.load([shop["T-Shirt"].pk])[shop["T-Shirt"].pk]
    assert catalog.price_of(shirt) == D("15.00")


def test_categories_are_full_paths_from_oscars_tree(shop) -> None:
    catalog = get_catalog()
    loaded = catalog.load([shop["Tripod"].pk, shop["T-Shirt S"].pk, shop["Camera"].pk])
    assert catalog.categories_of(loaded[shop["Tripod"].pk]) == [
        "Electronics > Cameras", "Electronics > Accessories",
    ] or catalog.categories_of(loaded[shop["Tripod"].pk]) == [
        "Electronics > Accessories", "Electronics > Cameras",
    ]  # fmt: skip
    assert catalog.categories_of(loaded[shop["T-Shirt S"].pk]) == ["Clothes"]
    assert catalog.category_of(loaded[shop["Camera"].pk]) == "Electronics > Cameras"
    in_cameras = catalog.products().filter(catalog.category_q("Electronics > Cameras"))
    assert set(in_cameras.values_list("title", flat=True)) == {"Camera", "Tripod"}


def test_title_description_image_and_parent(shop) -> None:
    from oscar.core.loading import get_model

    shirt = shop["T-Shirt"]
    shirt.description = "Soft cotton."
    shirt.save()
    get_model("catalogue", "ProductImage").objects.create(
        product=shirt, original="images/products/shirt.jpg", display_order=0
    )
    catalog = get_catalog()
    small = catalog.load([shop["T-Shirt S"].pk])[shop["T-Shirt S"].pk]
    assert catalog.name_of(small) == "T-Shirt S"
    assert catalog.read(small, "text") == "Soft cotton."
    assert catalog.parent_of(small).pk == shirt.pk
    assert catalog.browsable(small).pk == shirt.pk
    assert catalog.image_of(small).endswith("/media/images/products/shirt.jpg")
    assert catalog.read(small, "key") == "t-shirt-s"


def test_money_is_formatted_by_oscars_currency_filter(shop) -> None:
    assert get_catalog().format_money(D("1234.5")) == "£1,234.50"


def test_content_rows_carry_oscars_prices_and_paths(shop) -> None:
    rows = {pk: (name, cat, price) for pk, name, _, cat, price in get_catalog().content_rows()}
    assert rows[shop["Tripod"].pk][2] == D("1249.99")
    assert rows[shop["Camera"].pk][1] == "Electronics > Cameras"
    assert rows[shop["No Price Cap"].pk][2] is None
