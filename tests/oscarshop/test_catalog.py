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


def test_content_rows_carry_every_category_path(shop) -> None:
    rows = {pk: (text, cat) for pk, _, text, cat, _ in get_catalog().content_rows()}
    # The tripod's first path is its category; its second follows its (empty) description.
    assert rows[shop["Tripod"].pk] == ("Electronics > Accessories", "Electronics > Cameras")
    assert rows[shop["Camera"].pk] == ("", "Electronics > Cameras")


def test_a_price_is_written_in_its_stock_records_currency(
    client, shop, rebuilt, fbt, django_capture_on_commit_callbacks
) -> None:
    from crosssell.services import curation
    from crosssell.services.catalog import format_money

    cloth = shop["Lens Cloth"]
    record = cloth.stockrecords.get()
    record.price_currency = "EUR"
    with django_capture_on_commit_callbacks(execute=True):
        record.save()
    catalog = get_catalog()
    loaded = catalog.load([cloth.pk])[cloth.pk]
    assert catalog.currency_of(loaded) == "EUR"
    assert catalog.price_of(loaded) == D("4.99")
    assert catalog.format_money(catalog.price_of(loaded)) == "€4.99"
    assert format_money(D("4.99")) == "£4.99"  # a plain amount: OSCAR_DEFAULT_CURRENCY
    # Prices of one currency add up in it (a bundle's total); of two, in the default one.
    assert catalog.format_money(catalog.price_of(loaded) + catalog.price_of(loaded)) == "€9.98"
    card = catalog.load([shop["Memory Card"].pk])[shop["Memory Card"].pk]
    assert catalog.format_money(sum([catalog.price_of(loaded), catalog.price_of(card)])) == (
        "£17.49"
    )
    # The widget writes each product's price as Oscar's product page does.
    with django_capture_on_commit_callbacks(execute=True):
        curation.pin(shop["Camera"].pk, cloth.pk)
    html = client.get(shop["Camera"].get_absolute_url()).content.decode()
    assert cloth.pk in fbt(html)
    widget = html.split('data-crosssell="frequently-bought-together"', 1)[1].split("</section>")[0]
    assert "€4.99" in widget and "£4.99" not in widget and "£12.50" in widget
    page = client.get(cloth.get_absolute_url()).content.decode()
    assert "€4.99" in page  # Oscar's own price on the product's page


def test_the_bundle_script_writes_money_in_the_bundles_currency(
    client, shop, rebuilt, fbt, django_capture_on_commit_callbacks
) -> None:
    """The widget's script re-totals the ticked items in the format of ``data-money-sample``:
    a bundle priced in euros gets a euro sample, a bundle in the shop's currency a pound one."""
    from oscar.core.loading import get_model

    def sample() -> str:
        html = client.get(shop["Camera"].get_absolute_url()).content.decode()
        assert fbt(html)
        return html.split('data-money-sample="', 1)[1].split('"', 1)[0]

    assert sample().startswith("£")
    with django_capture_on_commit_callbacks(execute=True):
        for record in get_model("partner", "StockRecord").objects.all():
            record.price_currency = "EUR"
            record.save()
    assert sample() == "€1,234,567.89"


def test_the_strategys_stock_record_decides_price_and_availability(
    client, shop, rebuilt, fbt, django_capture_on_commit_callbacks
) -> None:
    """A product with two stock records, the first sold out: Oscar's default strategy sells
    from the first, so the product is unavailable, though the second has stock; restocked, it
    shows the first record's price, not the second's nor the lowest."""
    from oscar.core.loading import get_model

    from crosssell.services import curation

    flash = shop["Spare Battery"]
    first = flash.stockrecords.get()
    first.num_in_stock = 0
    partner = get_model("partner", "Partner").objects.create(name="Second warehouse")
    with django_capture_on_commit_callbacks(execute=True):
        first.save()
        flash.stockrecords.create(
            partner=partner, partner_sku="sku-second", price_currency="GBP", price=D("2.00"),
            num_in_stock=40,
        )  # fmt: skip
    catalog = get_catalog()
    loaded = catalog.load([flash.pk])[flash.pk]
    assert not purchase_info(loaded).availability.is_available_to_buy  # what Oscar says
    assert not catalog.is_sellable(loaded)
    assert not catalog.sellable_products().filter(pk=flash.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        curation.pin(shop["Camera"].pk, flash.pk)
    assert flash.pk not in fbt(client.get(shop["Camera"].get_absolute_url()).content.decode())
    first.num_in_stock = 50  # (the orders above allocated six)
    with django_capture_on_commit_callbacks(execute=True):
        first.save()
    loaded = catalog.load([flash.pk])[flash.pk]
    assert catalog.is_sellable(loaded) and catalog.price_of(loaded) == D("19.99")
    assert catalog.sellable_products().filter(pk=flash.pk).exists()
    html = client.get(shop["Camera"].get_absolute_url()).content.decode()
    assert fbt(html)[0] == flash.pk
    widget = html.split('data-crosssell="frequently-bought-together"', 1)[1].split("</section>")[0]
    assert "£19.99" in widget and "£2.00" not in widget
