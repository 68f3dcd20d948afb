"""The cart widget's ranking from the build's cart vectors (crosssell.engine.cart), as stored and
served: the build writes them, serving sums them (pins first, rejections out, the old fusion for
a build without them), the incremental update refreshes them, and a cart costs the same number
of queries whatever its size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Model
from django.middleware.csrf import get_token
from django.template import RequestContext, Template
from django.test import Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crosssell.engine.cart import (
    CART_STRATEGY,
    DEFAULT_LENGTH,
    DEFAULT_LIFT,
    score_cart,
    vector_weights,
)
from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, CartVector, Experiment, Purchase, Recommendation, Variant
from crosssell.services import cache as cs_cache
from crosssell.services import cart_store, curation
from crosssell.services.build import fail_build, prune_builds, rebuild
from crosssell.services.incremental import update_products
from crosssell.services.serving import ranked_slots, recommend
from crosssell.services.variants import build_variant
from crosssell.testing import buy, make_product, paired_shop
from tests.widgets import widgets

pytestmark = pytest.mark.django_db
FBT = Recommendation.Kind.BOUGHT_TOGETHER


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    cache.clear()
    yield


@pytest.fixture
def shop() -> list[Model]:
    """30 products in pairs bought together by many customers, and a live build."""
    products = paired_shop(n_products=30, n_orders=900, n_customers=300)
    rebuild(strategy=CoCount())
    return products


def live_vectors() -> dict[int, Any]:
    build = Build.live()
    assert build is not None
    return {
        v.product_id: cart_store.unpack(v.terms) for v in CartVector.objects.filter(build=build)
    }


def counts(product_id: int) -> tuple[dict[int, int], dict[int, int], int]:
    """Orders with both, distinct customers with both (in one order), orders of the product."""
    orders = set(Purchase.objects.filter(product_id=product_id).values_list("order_ref", flat=True))
    co: dict[int, int] = {}
    people: dict[int, set[str]] = {}
    for _order, other, customer in Purchase.objects.filter(order_ref__in=orders).values_list(
        "order_ref", "product_id", "customer_ref"
    ):
        if other != product_id:
            co[other] = co.get(other, 0) + 1
            people.setdefault(other, set()).add(customer)
    return co, {k: len(v) for k, v in people.items()}, len(orders)


def weights(product_id: int, co: dict[int, int], n: int) -> dict[int, float]:
    """The weight of each companion, as the live build's parameters make it."""
    build = Build.live()
    assert build is not None
    params = cart_store.CartParameters.of(build)
    sold = {t: counts(t)[2] for t in co}
    return {
        t: float(vector_weights([c], n, params.shrink, [sold[t]], params.lift)[0])
        for t, c in co.items()
    }


def test_a_build_writes_each_products_vector_with_its_weights(shop: list[Model]) -> None:
    build = Build.live()
    assert build is not None
    # the shrink may be the build's tuned one (CROSSSELL_TUNE); the rest are the defaults
    params = build.parameters["cart"]
    assert set(params) == {"shrink", "lift", "length", "min_customers"}
    assert (params["length"], params["lift"], params["min_customers"]) == (
        DEFAULT_LENGTH,
        DEFAULT_LIFT,
        3,
    )
    vectors = live_vectors()
    assert set(vectors) == {p.pk for p in shop}  # every product sold with others
    for product in shop[:4]:
        terms = vectors[product.pk]
        co, _, n = counts(product.pk)
        assert 0 < len(terms) <= DEFAULT_LENGTH
        expected = weights(product.pk, co, n)
        for target, weight, customers in terms.tolist():
            assert weight == pytest.approx(expected[target], rel=1e-6)
            assert customers >= 3  # the privacy threshold
        # best first: the largest weights, ties by the smaller product id
        assert terms["product"].tolist() == sorted(
            terms["product"].tolist(), key=lambda t: (-expected[t], t)
        )
        # its pair partner (bought with it in most orders) comes first
        i = shop.index(product)
        assert terms["product"][0] == shop[i ^ 1].pk


def test_a_pair_below_the_threshold_is_never_in_a_vector(shop: list[Model]) -> None:
    lonely = make_product("lonely")
    buy("x1", "only-one", shop[0], lonely)
    buy("x2", "only-one", shop[0], lonely)  # two orders, one customer
    rebuild(strategy=CoCount())
    vectors = live_vectors()
    assert lonely.pk not in vectors[shop[0].pk]["product"].tolist()
    assert lonely.pk not in vectors  # its only pair is below the threshold


def test_a_cart_is_ranked_by_its_summed_vectors(shop: list[Model]) -> None:
    cart = [shop[0].pk, shop[2].pk, shop[5].pk]
    vectors = live_vectors()
    ids, scores = score_cart([(vectors[s]["product"], vectors[s]["weight"]) for s in cart], cart)
    slots = ranked_slots(cart, FBT)
    assert [s.product_id for s in slots] == ids.tolist()[: len(slots)]
    assert [s.score for s in slots] == pytest.approx(scores.tolist()[: len(slots)])
    assert {s.strategy for s in slots} == {CART_STRATEGY}
    assert all(s.evidence["customers"] >= 3 for s in slots)
    # each product's pair partner is what the cart needs most
    assert {s.product_id for s in slots[:3]} == {shop[1].pk, shop[3].pk, shop[4].pk}
    shown = [item.product.pk for item in recommend(cart, 4)]
    assert shown == ids.tolist()[:4]


def test_the_stored_vectors_are_what_is_served(shop: list[Model]) -> None:
    cart = [shop[0].pk, shop[2].pk]
    far = shop[29]
    build = Build.live()
    row = CartVector.objects.get(build=build, product_id=shop[0].pk)
    terms = cart_store.unpack(row.terms)
    row.terms = cart_store.pack(
        [far.pk, *terms["product"].tolist()],
        [100.0, *terms["weight"].tolist()],
        [9, *terms["customers"].tolist()],
    )
    row.save()
    cs_cache.bump()
    assert ranked_slots(cart, FBT)[0].product_id == far.pk
    assert recommend(cart, 4)[0].product.pk == far.pk


def test_pins_come_first_and_rejected_pairs_add_nothing(shop: list[Model]) -> None:
    cart = [shop[0].pk, shop[2].pk]
    pinned = shop[20]
    curation.pin(shop[2].pk, pinned.pk)
    curation.reject(shop[0].pk, shop[1].pk)
    cs_cache.bump()
    slots = ranked_slots(cart, FBT)
    assert slots[0].product_id == pinned.pk and slots[0].pinned
    assert slots[0].strategy == "pinned"
    # shop[1] was only in shop[0]'s vector with a real weight: rejected, it adds nothing
    vectors = live_vectors()
    rest = vectors[shop[2].pk]
    expected = dict(zip(rest["product"].tolist(), rest["weight"].tolist(), strict=True))
    got = {s.product_id: s.score for s in slots if not s.pinned}
    assert got.get(shop[1].pk, 0.0) == pytest.approx(expected.get(shop[1].pk, 0.0))
    shown = [item.product.pk for item in recommend(cart, 6)]
    assert shown[0] == pinned.pk and shop[1].pk not in shown


def test_a_build_without_vectors_fuses_the_lists(shop: list[Model]) -> None:
    cart = [shop[0].pk, shop[2].pk]
    CartVector.objects.all().delete()  # a build from before the cart vectors
    cs_cache.bump()
    slots = ranked_slots(cart, FBT)
    assert slots and CART_STRATEGY not in {s.strategy for s in slots}
    assert {s.product_id for s in slots[:2]} == {shop[1].pk, shop[3].pk}
    assert len(recommend(cart, 6)) == 6
    # nor does an incremental update give it a few: the carts stay with one ranking
    buy("late", "late-c", shop[0], shop[1])
    update_products([shop[0].pk, shop[1].pk])
    assert not CartVector.objects.exists()


def test_a_variant_build_serves_its_own_vectors(shop: list[Model]) -> None:
    live = Build.live()
    assert live is not None
    other = rebuild(strategy=CoCount(), publish=False)
    cart = [shop[0].pk, shop[2].pk]
    CartVector.objects.filter(build=other).delete()
    far = shop[29]
    CartVector.objects.create(
        build=other, product_id=shop[0].pk, terms=cart_store.pack([far.pk], [1.0], [5])
    )
    assert [s.product_id for s in ranked_slots(cart, FBT, build_id=other.pk)] == [far.pk]
    assert ranked_slots(cart, FBT)[0].product_id != far.pk


def test_an_experiment_variants_build_fuses_its_own_lists(shop: list[Model]) -> None:
    # the vectors do not depend on the strategy: a variant's carts show its own lists
    experiment = Experiment.objects.create(name="cart test", placement="cart")
    variant = Variant.objects.create(experiment=experiment, name="pop", strategy="popularity")
    build = build_variant(variant)
    assert not CartVector.objects.filter(build=build).exists()
    slots = ranked_slots([shop[0].pk, shop[2].pk], FBT, build_id=build.pk)
    assert slots and {s.strategy for s in slots} == {"popularity"}


def test_an_order_refreshes_its_products_vectors(shop: list[Model]) -> None:
    a, b = shop[0], shop[7]
    for i in range(120):  # a new favourite companion, by 120 new customers
        buy(f"new{i}", f"new-c{i}", a, b)
    update_products([a.pk, b.pk])
    vectors = live_vectors()
    co, _, n = counts(a.pk)
    terms = vectors[a.pk]
    expected = weights(a.pk, co, n)
    assert terms["product"][0] == b.pk
    np.testing.assert_allclose(
        terms["weight"], [expected[t] for t in terms["product"].tolist()], rtol=1e-6
    )
    assert terms["product"].tolist() == sorted(
        terms["product"].tolist(), key=lambda t: (-expected[t], t)
    )
    assert vectors[b.pk]["product"][0] == a.pk
    cs_cache.bump()
    assert ranked_slots([a.pk, shop[2].pk], FBT)[0].product_id == b.pk


def test_vectors_go_with_their_build(shop: list[Model]) -> None:
    first = Build.live()
    assert first is not None and CartVector.objects.filter(build=first).exists()
    with override_settings(CROSSSELL_KEEP_BUILDS=0):
        second = rebuild(strategy=CoCount())
        prune_builds()
    assert not CartVector.objects.filter(build=first).exists()
    assert CartVector.objects.filter(build=second).exists()
    fail_build(second, RuntimeError("test"))
    assert not CartVector.objects.filter(build=second).exists()


def _render(source: str, **context: Any) -> str:
    request = RequestFactory().get("/cart/")
    request.user = AnonymousUser()
    get_token(request)
    return Template("{% load crosssell %}" + source).render(RequestContext(request, context))


@pytest.mark.parametrize("surface", ["recommend", "cart_tag"])
def test_query_count_does_not_grow_with_the_cart(shop: list[Model], surface: str) -> None:
    rng = np.random.default_rng(3)
    queries: dict[int, int] = {}
    for size in (1, 5, 20):
        cart = [shop[i].pk for i in rng.choice(len(shop), size=size, replace=False)]
        cache.clear()  # a cold cache: the most a cart can cost
        with CaptureQueriesContext(connection) as q:
            if surface == "recommend":
                assert len(recommend(cart, 4)) == 4
            else:
                html = _render("{% cart_recommendations ids limit=4 %}", ids=cart)
                assert len(widgets(html)["cart-recommendations"].ids) == 4
        queries[size] = len(q)
    # a one-product cart is served its product's list (another path, a few queries of its own)
    assert queries[5] == queries[20] <= 12, queries
    assert queries[1] <= 12, queries


def test_the_cart_endpoint_caches_its_envelope(shop: list[Model]) -> None:
    client = Client()
    url = reverse("crosssell-api:cart")
    body = json.dumps({"product_ids": [shop[0].pk, shop[2].pk], "limit": 4})
    first = client.post(url, body, content_type="application/json")
    assert first.status_code == 200
    with CaptureQueriesContext(connection) as q:
        again = client.post(url, body, content_type="application/json")
    assert again.json() == first.json()
    assert len(q) <= 1, [x["sql"] for x in q.captured_queries]  # the products' existence
    curation.pin(shop[0].pk, shop[20].pk)
    cs_cache.bump()  # what the pin's commit does
    pinned = client.post(url, body, content_type="application/json").json()
    assert pinned["results"][0]["id"] == shop[20].pk
