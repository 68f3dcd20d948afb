"""Exclusions by category over products with several categories: an exclusion applies when any
of the product's categories matches (``Rules.excluded`` takes collections), everywhere the
exclusions are read (serving, ``excluded_pairs``, the rebuild), with the categories read in bulk
(``Catalog.categories_for``). A single category (a plain string) is read as before."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Exclusion, Purchase, Recommendation
from crosssell.services import cache as cs_cache
from crosssell.services.build import rebuild
from crosssell.services.catalog import FieldCatalog, get_catalog
from crosssell.services.exclusions import Rules, excluded_pairs, mask
from crosssell.services.serving import recommend
from crosssell.testing import buy, make_product
from tests.swapshop.helpers import MULTI_FIELDS, SWAPPED
from tests.swapshop.helpers import item as _item

RULES = Rules(
    products=frozenset({(1, 2)}),
    product_category=frozenset({(1, "Sale")}),
    category_product=frozenset({("Clearance", 3)}),
    categories=frozenset({("Cameras", "Books")}),
)


def test_a_category_rule_matches_any_of_several_categories() -> None:
    assert RULES.by_category
    # product -> category: the target's second category
    assert RULES.excluded(1, ("Cameras",), 9, ("Photo", "Sale"))
    assert not RULES.excluded(1, ("Cameras",), 9, ("Photo", "Garden"))
    # category -> product: the source's second category
    assert RULES.excluded(7, ("Photo", "Clearance"), 3, ())
    assert not RULES.excluded(7, ("Photo",), 3, ())
    # category -> category: any source category with any target category
    assert RULES.excluded(7, ["Garden", "Cameras"], 8, {"Coffee", "Books"})
    assert not RULES.excluded(7, ["Garden", "Cameras"], 8, {"Coffee"})
    # product -> product needs no category
    assert RULES.excluded(1, (), 2, ())


def test_one_category_as_a_string_is_read_as_before() -> None:
    assert RULES.excluded(1, "Cameras", 9, "Sale")
    assert not RULES.excluded(1, "Cameras", 9, "Photo")
    assert RULES.excluded(7, "Cameras", 8, "Books")
    assert not RULES.excluded(7, "", 8, "")  # "" is no category, not a category named ""
    assert not Rules(frozenset({(1, 2)}), frozenset(), frozenset(), frozenset()).by_category


def test_mask_takes_each_products_categories() -> None:
    sources, targets = [(), "x", ("Cameras",)], [("A", "Sale"), "A", "Books"]
    assert mask(RULES, [1, 1, 7], sources, [9, 9, 8], targets) == [True, False, True]
    empty = Rules(frozenset(), frozenset(), frozenset(), frozenset())
    assert mask(empty, [1], [""], [2], [""]) == [False]


# --------------------------------------------------------------------------- through the services

#: Extra categories a shop framework's catalog gives some products (by primary key).
EXTRA: dict[int, tuple[str, ...]] = {}


class SeveralCategories(FieldCatalog):
    """A catalog whose products may have categories besides their mapped one (a stand-in for a
    shop framework with a category tree, such as django-oscar)."""

    def categories_for(self, ids: Iterable[int] | None = None) -> dict[int, tuple[str, ...]]:
        found = super().categories_for(ids)
        wanted = None if ids is None else {int(i) for i in ids}
        for pk, extra in EXTRA.items():
            if wanted is None or pk in wanted:
                found[pk] = found.get(pk, ()) + extra
        return found


@pytest.fixture
def two_categories() -> Any:
    """A camera bought with four accessories; the first is also in "Clearance"."""
    with override_settings(CROSSSELL_CATALOG=f"{__name__}.SeveralCategories"):
        camera = make_product("camera", category="Cameras", price="500")
        others = [make_product(f"acc{i}", category="Accessories", price="20") for i in range(4)]
        rows = []
        for i, other in enumerate(others):
            for c in range(10 - i):
                rows += [
                    Purchase(order_ref=f"o{i}-{c}", customer_ref=f"c{c}", product=camera),
                    Purchase(order_ref=f"o{i}-{c}", customer_ref=f"c{c}", product=other),
                ]
        Purchase.objects.bulk_create(rows)
        EXTRA.clear()
        EXTRA[others[0].pk] = ("Clearance",)
        try:
            yield camera, others
        finally:
            EXTRA.clear()


@pytest.mark.django_db
def test_serving_pairs_and_the_rebuild_read_every_category(two_categories: Any) -> None:
    camera, others = two_categories
    first = others[0]
    assert get_catalog().category_of(get_catalog().load([first.pk])[first.pk]) != "Clearance"
    build = rebuild(strategy=CoCount())
    assert Recommendation.objects.filter(build=build, source=camera, target=first).exists()
    Exclusion.objects.create(source_product=camera, target_category="Clearance", symmetric=False)
    cs_cache.bump()
    shown = [item.product.pk for item in recommend([camera.pk], 4)]
    assert first.pk not in shown and others[1].pk in shown
    assert excluded_pairs([camera.pk], [p.pk for p in others]) == {(camera.pk, first.pk)}
    build = rebuild(strategy=CoCount())
    rows = Recommendation.objects.filter(build=build, source=camera)
    assert not rows.filter(target=first).exists()
    assert rows.filter(target=others[1]).exists()
    # the other way round: an exclusion from the category, on the product's second category
    Exclusion.objects.all().delete()
    Exclusion.objects.create(source_category="Clearance", target_product=camera, symmetric=False)
    cs_cache.bump()
    assert camera.pk not in [item.product.pk for item in recommend([first.pk], 4)]
    assert camera.pk in [item.product.pk for item in recommend([others[1].pk], 4)]


@pytest.mark.django_db
@pytest.mark.skipif(SWAPPED, reason="the default product model's one category field")
def test_a_single_category_field_reads_its_one_category_in_one_query() -> None:
    lamp = make_product("lamp", category="Lights", price="10")
    bare = make_product("bare", category="", price="10")
    catalog = get_catalog()
    with CaptureQueriesContext(connection) as queries:
        found = catalog.categories_for([lamp.pk, bare.pk])
    assert len(queries) == 1
    assert found == {lamp.pk: ("Lights",)}  # no category: left out
    assert catalog.categories_for([]) == {}
    assert catalog.category_names() == ["Lights"]


@pytest.mark.django_db
@pytest.mark.skipif(not SWAPPED, reason="needs tests.settings_swapped (swapshop)")
def test_a_mapped_many_to_many_gives_every_category_to_the_exclusions() -> None:
    d = Decimal
    with override_settings(CROSSSELL_PRODUCT_FIELDS=MULTI_FIELDS):
        a = _item("A", offers=[(d("12.00"), 3)], categories=["Photo", "Sale"])
        b = _item("B", offers=[(d("20.00"), 4)], categories=["Coffee"])
        c = _item("C", offers=[(d("21.00"), 4)], categories=["Coffee"])
        catalog = get_catalog()
        with CaptureQueriesContext(connection) as queries:
            found = catalog.categories_for([a.pk, b.pk])
        assert len(queries) == 1
        assert found == {a.pk: ("Photo", "Sale"), b.pk: ("Coffee",)}
        assert list(found[a.pk]) == catalog.categories_of(a)
        for n in range(4):
            buy(f"x{n}", f"k{n}", a, b, c)
        Exclusion.objects.create(source_product=b, target_category="Sale", symmetric=False)
        cs_cache.bump()
        shown = [item.product.pk for item in recommend([b.pk], 4)]
        assert a.pk not in shown and c.pk in shown
