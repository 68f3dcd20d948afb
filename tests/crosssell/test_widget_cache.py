"""The widgets' rendered HTML is cached per cache generation, with the per-request parts
(impression token, CSRF token, ``next``) filled in for each request; a changed product starts a
new generation at once."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template import RequestContext, Template
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from crosssell.models import Experiment, Impression, Variant, product_field
from crosssell.services import tracking
from crosssell.services.products import catalog_changed, products
from crosssell.templatetags.crosssell import add_to_cart_url, marks
from tests.crosssell.widget_shop import FBT, Shop
from tests.widgets import widgets

pytestmark = pytest.mark.django_db
ACTIVE = str(product_field("active"))
SOURCE = "{% load crosssell %}{% frequently_bought_together product limit=3 %}"


@pytest.fixture
def shop(db: None) -> Shop:
    return Shop()


def page_request(visitor: str = "visitor-1", path: str = "/p/?a=1&b=2") -> HttpRequest:
    request = RequestFactory().get(path)
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    request.user = AnonymousUser()
    request.crosssell_visitor = visitor  # type: ignore[attr-defined]
    get_token(request)
    return request


def render(request: HttpRequest, product: Any) -> str:
    with tracking.collecting():  # as the middleware does: the request's events in one push
        return Template(SOURCE).render(RequestContext(request, {"product": product}))


def tokens(html: str) -> set[str]:
    return set(re.findall(r'name="cs" value="([^"]+)"', html))


def test_a_hot_widget_costs_no_query_and_fills_in_each_request(shop: Shop) -> None:
    first = render(page_request(), shop.main)
    with CaptureQueriesContext(connection) as queries:
        second = render(page_request("visitor-2"), shop.main)
    assert len(queries) == 0
    assert widgets(first)[FBT].ids == widgets(second)[FBT].ids == [shop.b.pk, shop.c.pk, shop.d.pk]
    # Each render is its own impression, with its own signed token...
    assert len(tokens(first)) == len(tokens(second)) == 1
    assert tokens(first) != tokens(second)
    token = tokens(second).pop()
    assert tracking.token_products(tracking.read_token(token) or {}) == {
        shop.b.pk,
        shop.c.pk,
        shop.d.pk,
    }
    assert f"cs={token}&amp;csp={shop.b.pk}" in second
    # ...the request's CSRF token and its own path; no mark is left.
    if add_to_cart_url():  # a shop whose widgets have a form
        assert re.search(r'name="csrfmiddlewaretoken" value="[A-Za-z0-9]{64}"', second)
    assert 'name="next" value="/p/?a=1&amp;b=2"' in second
    mark = marks()
    assert all(m not in second for m in (mark.token, mark.csrf, mark.next))
    tracking.flush()
    shown = list(Impression.objects.order_by("created_at").values_list("visitor", "products"))
    assert shown == [
        ("visitor-1", [shop.b.pk, shop.c.pk, shop.d.pk]),
        ("visitor-2", [shop.b.pk, shop.c.pk, shop.d.pk]),
    ]


def test_a_product_saved_unsellable_leaves_the_cached_widget_at_once(
    shop: Shop, django_capture_on_commit_callbacks: Any
) -> None:
    assert shop.c.pk in widgets(render(page_request(), shop.main))[FBT].ids
    with django_capture_on_commit_callbacks(execute=True):
        setattr(shop.c, ACTIVE, False)  # whatever the product model calls it
        shop.c.save()
    assert shop.c.pk not in widgets(render(page_request(), shop.main))[FBT].ids


def test_a_change_behind_the_signals_is_announced_with_catalog_changed(
    shop: Shop, django_capture_on_commit_callbacks: Any
) -> None:
    assert shop.b.pk in widgets(render(page_request(), shop.main))[FBT].ids
    with django_capture_on_commit_callbacks(execute=True):
        products().filter(pk=shop.b.pk).update(**{ACTIVE: False})
        catalog_changed()
    assert shop.b.pk not in widgets(render(page_request(), shop.main))[FBT].ids


def test_a_holdout_visitor_sees_nothing_and_is_counted(
    shop: Shop, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        exp = Experiment.objects.create(name="holdout only", placement="product")
        holdout = Variant.objects.create(experiment=exp, name="none", holdout=True)
    assert render(page_request(), shop.main).strip() == ""
    tracking.flush()
    impression = Impression.objects.get()
    assert (impression.variant_id, impression.products) == (holdout.pk, [])


def test_without_tracking_the_links_carry_no_token(shop: Shop, settings: Any) -> None:
    settings.CROSSSELL_TRACKING = False
    html = render(page_request(), shop.main)
    assert widgets(html)[FBT].ids and "cs=" not in html and not tokens(html)
