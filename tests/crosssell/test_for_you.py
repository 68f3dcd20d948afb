"""Recommended for you: the widget and the API read one history and leave it out the same way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.middleware.csrf import get_token
from django.template import RequestContext, Template
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Purchase, user_customer_ref
from crosssell.services import for_you
from crosssell.services.build import rebuild
from crosssell.testing import make_product
from tests.widgets import widgets

pytestmark = pytest.mark.django_db
LIMIT = 4


class Shop:
    """``usual`` is bought with ``old`` (8 customers), then ``a``, ``b``, ``c``, ``d`` (7 to 4).

    Ann bought ``old`` once, a year ago, and ``usual`` 450 times since (one line per order):
    her last 400 lines name ``usual`` only, and ``old``, its best companion, is hers too.
    """

    def __init__(self) -> None:
        self.usual = make_product("Coffee beans", category="Coffee", price="12.00")
        self.old = make_product("Grinder", category="Coffee", price="80.00")
        self.companions = [
            make_product(f"Filter {i}", category="Coffee", price="5.00") for i in range(4)
        ]
        self.others = [make_product(f"Tea {i}", category="Tea", price="4.00") for i in range(4)]
        rows: list[Purchase] = []
        for partner, customers in zip([self.old, *self.companions], range(8, 3, -1), strict=True):
            for i in range(customers):
                ref = f"other-{partner.pk}-{i}"
                rows += [
                    Purchase(order_ref=f"o-{partner.pk}-{i}", customer_ref=ref, product=p)
                    for p in (self.usual, partner)
                ]
        for j, tea in enumerate(self.others):
            rows += [
                Purchase(order_ref=f"t-{j}-{i}", customer_ref=f"tea-{j}-{i}", product=tea)
                for i in range(3)
            ]
        self.ann = get_user_model().objects.create_user("ann", password="x-123456789")
        ref = user_customer_ref(self.ann)
        now = timezone.now()
        rows.append(
            Purchase(
                order_ref="ann-old",
                customer_ref=ref,
                product=self.old,
                purchased_at=now - timedelta(days=365),
            )
        )
        rows += [
            Purchase(
                order_ref=f"ann-{i}",
                customer_ref=ref,
                product=self.usual,
                purchased_at=now - timedelta(days=300) + timedelta(hours=i),
            )
            for i in range(450)
        ]
        Purchase.objects.bulk_create(rows)
        rebuild(strategy=CoCount(), trigger="test")
        cache.clear()


@pytest.fixture
def shop(db: None) -> Shop:
    return Shop()


def widget_ids(user: Any) -> list[int]:
    request = RequestFactory().get("/")
    request.user = user
    get_token(request)
    html = Template(f"{{% load crosssell %}}{{% recommended_for_you user limit={LIMIT} %}}").render(
        RequestContext(request, {"user": user})
    )
    return widgets(html)["recommended-for-you"].ids


def api_ids(user: Any) -> list[int]:
    api = APIClient()
    api.force_login(user)
    response = api.get(reverse("crosssell-api:me"), {"limit": LIMIT})
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_the_history_is_distinct_products_most_recent_first(shop: Shop) -> None:
    history = for_you.history(user_customer_ref(shop.ann))
    assert history.bought == (shop.usual.pk, shop.old.pk)
    assert history.sources == [shop.usual.pk, shop.old.pk]
    assert for_you.history("") == for_you.History(())


def test_widget_and_api_agree_for_a_long_history(shop: Shop) -> None:
    assert Purchase.objects.filter(customer_ref=user_customer_ref(shop.ann)).count() > 400
    shown = widget_ids(shop.ann)
    cache.clear()  # the API computes its list afresh, not from the widget's cached slots
    served = api_ids(shop.ann)
    assert shown == served  # same products, same order
    assert len(shown) == LIMIT
    # Bought a year and 450 lines ago, the grinder is still left out, by both.
    assert shop.old.pk not in shown and shop.usual.pk not in shown
    assert shown == [p.pk for p in shop.companions]  # the beans' companions, best first


def test_both_serve_what_the_service_serves(shop: Shop) -> None:
    expected = [
        item.product.pk
        for item in for_you.recommend_for(for_you.history(user_customer_ref(shop.ann)), LIMIT)
    ]
    assert widget_ids(shop.ann) == expected == api_ids(shop.ann)


def test_a_new_purchase_changes_the_widget_at_once(shop: Shop) -> None:
    first = widget_ids(shop.ann)
    Purchase.objects.create(
        order_ref="ann-new", customer_ref=user_customer_ref(shop.ann), product=shop.companions[0]
    )
    # No cache generation is started: the history is part of the widget's cache key.
    again = widget_ids(shop.ann)
    assert shop.companions[0].pk in first and shop.companions[0].pk not in again
    assert again == api_ids(shop.ann)


def test_guests_get_no_widget_and_no_history(shop: Shop) -> None:
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    html = Template("{% load crosssell %}{% recommended_for_you user %}").render(
        RequestContext(request, {"user": AnonymousUser()})
    )
    assert html.strip() == ""
    assert for_you.history(user_customer_ref(AnonymousUser())).bought == ()
