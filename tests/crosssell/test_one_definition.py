"""Each rule has one definition (issue 17): the fallback strategies, the cache bump on commit,
and the variant/holdout/cache envelope the widgets and the API share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template import RequestContext, Template
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

import crosssell
from crosssell import signals
from crosssell.engine import registry
from crosssell.engine.evaluation import cart as cart_eval
from crosssell.models import Build, Exclusion, Experiment, Purchase, Recommendation, Variant
from crosssell.services import cache as cs_cache
from crosssell.services import curation, dashboard, serving, tracking
from crosssell.services.build import rebuild
from crosssell.services.products import catalog_changed
from crosssell.services.variants import build_variant
from crosssell.testing import make_product
from tests.widgets import widgets

FBT = Recommendation.Kind.BOUGHT_TOGETHER
FALLBACKS = sorted(registry.FALLBACK_STRATEGIES)
#: Labels serving gives the slots it fills itself (no registry strategy behind them).
SERVING_LABELS = {"bestsellers", "category_bestsellers"}


# --------------------------------------------------------------------------- fallbacks


def test_serving_the_dashboard_and_the_cart_evaluation_share_one_object() -> None:
    from crosssell.admin import products as admin_products

    rule = registry.FALLBACK_STRATEGIES
    assert serving.FALLBACK_STRATEGIES is rule
    assert dashboard.FALLBACK_STRATEGIES is rule
    assert admin_products.FALLBACK_STRATEGIES is rule
    assert cart_eval.SERVED_FALLBACKS is rule


def test_each_fallback_name_is_a_strategys_slot_label_or_a_serving_fill() -> None:
    assert registry.FALLBACK_STRATEGIES >= SERVING_LABELS
    for name in registry.FALLBACK_STRATEGIES - SERVING_LABELS:
        assert name in registry.STRATEGIES
        assert registry.strategy_class(name).name == name  # what its rows' strategy says
    # The co-purchase strategies are not fallbacks.
    assert not {"cocount", "cocount_content", "rules", "item_knn"} & registry.FALLBACK_STRATEGIES


@pytest.fixture
def hand_build(db: None) -> dict[str, Any]:
    """A live build written by hand: ``a`` lists ``x`` first, ``b`` lists ``z`` then ``y``."""
    p = {n: make_product(n, category="Things", price="10.00") for n in "abxyz"}
    build = Build.objects.create(state=Build.State.LIVE)
    rows = [("a", "x", 0, "cocount"), ("b", "z", 0, "cocount"), ("b", "y", 1, "cocount")]
    Recommendation.objects.bulk_create(
        Recommendation(build=build, source=p[s], target=p[t], rank=r, strategy=k, score=1.0)
        for s, t, r, k in rows
    )
    cs_cache.bump()
    return p


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ["cocount", *FALLBACKS])
def test_serving_and_the_coverage_agree_on_what_is_a_fallback(
    hand_build: dict[str, Any], strategy: str
) -> None:
    p = hand_build
    Recommendation.objects.filter(source=p["a"], target=p["x"]).update(strategy=strategy)
    cs_cache.bump()
    served = [i.product.pk for i in serving.recommend([p["a"].pk, p["b"].pk], 3)]
    real_sources = dashboard.coverage(limit=1).some_real
    if strategy in registry.FALLBACK_STRATEGIES:
        # x weighs a fifth of a companion in the cart's fused list, and a has no real one.
        assert served == [p["z"].pk, p["y"].pk, p["x"].pk]
        assert real_sources == 1
    else:
        assert served == [p["x"].pk, p["z"].pk, p["y"].pk]
        assert real_sources == 2


@pytest.mark.django_db
def test_the_serving_fills_are_labelled_as_fallbacks(hand_build: dict[str, Any]) -> None:
    unsold = make_product("unsold", category="Things", price="10.00")
    Purchase.objects.bulk_create(
        Purchase(order_ref=f"o{i}", customer_ref=f"c{i}", product=hand_build["z"]) for i in range(3)
    )
    cs_cache.bump()
    items = serving.recommend([unsold.pk], 2, category="Things")
    assert items and {i.slot.strategy for i in items} <= SERVING_LABELS


# --------------------------------------------------------------------------- the cache bump


def test_one_bump_on_commit() -> None:
    assert curation.bump_on_commit is cs_cache.bump_on_commit
    assert curation.bump is cs_cache.bump
    root = Path(crosssell.__file__).parent
    scheduled = re.compile(r"on_commit\(\s*(cs_cache\.|curation\.)?bump\s*\)")
    found = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if scheduled.search(path.read_text(encoding="utf-8"))
    ]
    assert found == ["services/cache.py"]


@pytest.mark.django_db
def test_the_receivers_and_the_services_schedule_the_same_bump(
    django_capture_on_commit_callbacks: Any,
) -> None:
    product = make_product("p", price="10.00")
    with django_capture_on_commit_callbacks() as by_signal:
        Exclusion.objects.create(source_product=product, target_category="Other")
    with django_capture_on_commit_callbacks() as by_service:
        catalog_changed()
    with django_capture_on_commit_callbacks() as by_receiver:
        signals.bump_on_change(sender=Exclusion)
    assert by_signal == by_service == by_receiver == [cs_cache.bump]


@pytest.mark.django_db
def test_a_rolled_back_change_starts_no_generation(django_capture_on_commit_callbacks: Any) -> None:
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        catalog_changed()
        raise RuntimeError("rolled back")
    assert callbacks == []


# --------------------------------------------------------------------------- the envelope


@pytest.fixture
def coffee(db: None) -> dict[str, Any]:
    """The mug goes with beans (40 customers) and a kettle (35); the camera sells most."""
    p = {
        n: make_product(n, category=c, price="10.00")
        for n, c in [
            ("camera", "Photo"),
            ("card", "Photo"),
            ("beans", "Coffee"),
            ("mug", "Coffee"),
            ("kettle", "Coffee"),
        ]
    }
    orders = [("camera", "card", 60), ("beans", "mug", 40), ("kettle", "mug", 35)]
    Purchase.objects.bulk_create(
        Purchase(order_ref=f"{a}-{b}-{i}", customer_ref=f"{a}-{b}-{i}", product=p[name])
        for a, b, n in orders
        for i in range(n)
        for name in (a, b)
    )
    rebuild(trigger="test")
    return p


def page(visitor: str) -> HttpRequest:
    request = RequestFactory().get("/p/")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    request.crosssell_visitor = visitor  # type: ignore[attr-defined]
    get_token(request)
    return request


def widget_ids(product: Any, visitor: str) -> list[int]:
    source = "{% load crosssell %}{% frequently_bought_together product limit=3 %}"
    with tracking.collecting():
        html = Template(source).render(RequestContext(page(visitor), {"product": product}))
    found = widgets(html)
    return found["frequently-bought-together"].ids if found else []


def api_ids(product: Any, visitor: str) -> list[int]:
    url = reverse("crosssell-api:frequently-bought-together", kwargs={"product_id": product.pk})
    api = APIClient()
    api.cookies[tracking.COOKIE] = visitor
    response = api.get(url, {"limit": 3})
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.django_db
def test_a_variants_build_is_served_by_the_widget_and_the_api_alike(
    coffee: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    mug = coffee["mug"]
    category = serving.category_of(mug)
    live = [i.product.pk for i in serving.recommend([mug.pk], 3, category=category)]
    with django_capture_on_commit_callbacks(execute=True):
        exp = Experiment.objects.create(name="popular", placement="product")
        variant = Variant.objects.create(experiment=exp, name="popular", strategy="popularity")
    with django_capture_on_commit_callbacks(execute=True):
        build = build_variant(variant)
    served = serving.recommend([mug.pk], 3, category=category, build_id=build.pk)
    expected = [i.product.pk for i in served]
    assert expected != live and expected[0] == coffee["camera"].pk
    assert widget_ids(mug, "visitor-1") == expected == api_ids(mug, "visitor-1")


@pytest.mark.django_db
def test_a_holdout_visitor_gets_nothing_from_the_widget_and_the_api(
    coffee: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    assert widget_ids(coffee["mug"], "visitor-1") and api_ids(coffee["mug"], "visitor-1")
    with django_capture_on_commit_callbacks(execute=True):
        exp = Experiment.objects.create(name="holdout only", placement="product")
        Variant.objects.create(experiment=exp, name="none", holdout=True)
    assert widget_ids(coffee["mug"], "visitor-1") == [] == api_ids(coffee["mug"], "visitor-1")
    # ...and a product not for sale is still a 404 for the holdout.
    url = reverse("crosssell-api:frequently-bought-together", kwargs={"product_id": 10**9})
    assert APIClient().get(url).status_code == 404
