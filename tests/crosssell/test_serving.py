"""Serving rules: what a widget may show, whatever the live build says."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Exclusion, Purchase, Recommendation, get_product_model
from crosssell.services import cache as cs_cache
from crosssell.services.build import rebuild
from crosssell.services.products import price_of
from crosssell.services.serving import recommend
from crosssell.testing import make_product

pytestmark = pytest.mark.django_db
FBT = Recommendation.Kind.BOUGHT_TOGETHER
is_default_model = get_product_model()._meta.label == "crosssell.Product"


@pytest.fixture
def shop() -> dict[str, Any]:
    """A camera bought with 8 companions, by decreasing numbers of customers."""
    camera = make_product("camera", category="Cameras", price="500")
    others = [
        make_product(f"acc{i}", category="Accessories", price=str(10 * (i + 1))) for i in range(8)
    ]
    rows = []
    for i, other in enumerate(others):
        for c in range(12 - i):
            rows += [
                Purchase(order_ref=f"o{i}-{c}", customer_ref=f"c{c}", product=camera),
                Purchase(order_ref=f"o{i}-{c}", customer_ref=f"c{c}", product=other),
            ]
    Purchase.objects.bulk_create(rows)
    rebuild(strategy=CoCount())
    return {"camera": camera, "others": others}


def ids(items: list[Any]) -> list[int]:
    return [item.product.pk for item in items]


def test_ranked_by_the_live_build(shop: dict[str, Any]) -> None:
    assert ids(recommend([shop["camera"].pk], 4)) == [p.pk for p in shop["others"][:4]]


def test_unsellable_products_are_skipped_and_the_list_stays_full(shop: dict[str, Any]) -> None:
    first, second = shop["others"][:2]
    get_product_model()._default_manager.filter(pk=first.pk).update(
        **{"is_active" if is_default_model else "listed": False}
    )
    if is_default_model:
        get_product_model()._default_manager.filter(pk=second.pk).update(stock=0)
    cs_cache.bump()
    got = ids(recommend([shop["camera"].pk], 4))
    assert first.pk not in got and len(got) == 4
    if is_default_model:
        assert second.pk not in got


def test_exclusions_apply_at_once_both_ways(shop: dict[str, Any]) -> None:
    camera, first = shop["camera"], shop["others"][0]
    Exclusion.objects.create(source_product=camera, target_product=first)
    cs_cache.bump()
    assert first.pk not in ids(recommend([camera.pk], 8))
    assert camera.pk not in ids(recommend([first.pk], 8))


def test_category_exclusion(shop: dict[str, Any]) -> None:
    Exclusion.objects.create(source_category="Cameras", target_category="Accessories")
    cs_cache.bump()
    got = recommend([shop["camera"].pk], 4)
    assert not {p.pk for p in shop["others"]} & set(ids(got))


def test_exclusions_are_applied_when_building(shop: dict[str, Any]) -> None:
    camera, first = shop["camera"], shop["others"][0]
    Exclusion.objects.create(source_product=camera, target_product=first, symmetric=False)
    build = rebuild(strategy=CoCount())
    assert not Recommendation.objects.filter(build=build, source=camera, target=first).exists()
    assert Recommendation.objects.filter(build=build, source=first, target=camera).exists()


@override_settings(CROSSSELL_PRICE_BAND=(0.0, 0.05))
def test_price_band_keeps_to_the_viewed_products_price(shop: dict[str, Any]) -> None:
    got = recommend([shop["camera"].pk], 4)
    assert got and all(price_of(item.product) <= 25 for item in got)


@pytest.mark.skipif(not is_default_model, reason="the swapped model has no variants")
def test_variants_are_shown_as_their_parent(shop: dict[str, Any]) -> None:
    parent = make_product("tripod", category="Accessories", price="80")
    variant = shop["others"][0]
    type(variant)._default_manager.filter(pk=variant.pk).update(parent=parent)
    cs_cache.bump()
    got = recommend([shop["camera"].pk], 4)
    assert got[0].product.pk == parent.pk and variant.pk not in ids(got)


def test_pinned_first_and_rejected_never(shop: dict[str, Any]) -> None:
    camera, others = shop["camera"], shop["others"]
    Recommendation.objects.create(source=camera, target=others[6], kind=FBT, status="pinned")
    Recommendation.objects.filter(build__isnull=False, source=camera, target=others[0]).update(
        status="rejected"
    )
    cs_cache.bump()
    got = recommend([camera.pk], 4)
    assert ids(got)[0] == others[6].pk and got[0].slot.pinned
    assert others[0].pk not in ids(got)


def test_fallbacks_fill_a_product_with_no_sales(shop: dict[str, Any]) -> None:
    newcomer = make_product("new lens", category="Accessories")
    got = recommend([newcomer.pk], 6)
    assert len(got) == 6 and newcomer.pk not in ids(got)
    assert {item.slot.strategy for item in got} <= {"popularity", "bestsellers", "cocount"}


def test_cart_never_recommends_its_own_items(shop: dict[str, Any]) -> None:
    cart = [shop["camera"].pk, shop["others"][0].pk]
    got = ids(recommend(cart, 6))
    assert len(got) == 6 and not set(cart) & set(got)


def test_query_count_does_not_grow_with_the_list(shop: dict[str, Any]) -> None:
    counts = []
    for limit in (2, 8):
        cache.clear()  # a cold cache: the most queries a widget can cost
        with CaptureQueriesContext(connection) as ctx:
            recommend([shop["camera"].pk], limit)
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
