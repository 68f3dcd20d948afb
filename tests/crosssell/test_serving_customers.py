"""Serving counts a pair's customers as the build does: over their whole history, not per order.

A build publishes a pair with the distinct customers who bought both products, in one order or
in several (``pair_evidence``); serving checks a published pair again (an erasure may have taken
it below the threshold). The check once counted only the customers who bought both in one order,
so it dropped a pair the build had published, and a merchant's pin of it with it (the admin's
"Pinned" message, and the widget without the product).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings

from crosssell.models import Build, Purchase, Recommendation
from crosssell.services import curation
from crosssell.services.serving import recommend
from crosssell.testing import make_product

pytestmark = pytest.mark.django_db
FBT = Recommendation.Kind.BOUGHT_TOGETHER


def shop(people: int) -> dict[str, Any]:
    """A camera and a card each bought by ``people`` customers, never in the same order; a
    lens bought with the camera by 5; a live build that lists the lens, then the card."""
    cache.clear()
    camera = make_product("camera", category="Cameras", price="500")
    card = make_product("card", category="Memory", price="20")
    lens = make_product("lens", category="Lenses", price="300")
    rows = []
    for c in range(people):
        rows += [
            Purchase(order_ref=f"cam{c}", customer_ref=f"p{c}", product=camera),
            Purchase(order_ref=f"card{c}", customer_ref=f"p{c}", product=card),
        ]
    for c in range(5):
        rows += [
            Purchase(order_ref=f"kit{c}", customer_ref=f"k{c}", product=camera),
            Purchase(order_ref=f"kit{c}", customer_ref=f"k{c}", product=lens),
        ]
    Purchase.objects.bulk_create(rows)
    build = Build.objects.create(state=Build.State.LIVE)
    for rank, (target, co, customers) in enumerate([(lens, 5, 5), (card, 0, 3)]):
        Recommendation.objects.create(
            build=build,
            kind=FBT,
            source=camera,
            target=target,
            rank=rank,
            score=float(10 - rank),
            strategy="cocount_content",
            evidence={"co_count": co, "customers": customers},
        )
    return {"camera": camera, "card": card, "lens": lens}


def ids(source: Any) -> list[int]:
    return [item.product.pk for item in recommend([source.pk], 4)]


@override_settings(CROSSSELL_MIN_CUSTOMERS=3)
def test_a_pair_of_customers_who_bought_in_separate_orders_is_served_and_pinned_first(
    django_capture_on_commit_callbacks: Any,
) -> None:
    s = shop(people=3)
    assert ids(s["camera"])[:2] == [s["lens"].pk, s["card"].pk]
    with django_capture_on_commit_callbacks(execute=True):  # the pin's new cache generation
        curation.pin(s["camera"].pk, s["card"].pk)
    got = recommend([s["camera"].pk], 4)
    assert got[0].product.pk == s["card"].pk and got[0].slot.pinned


@override_settings(CROSSSELL_MIN_CUSTOMERS=3)
def test_a_published_pair_now_below_the_threshold_is_still_dropped() -> None:
    s = shop(people=2)  # the row says 3 customers; the purchases say 2 (an erasure since)
    assert s["card"].pk not in ids(s["camera"])
    assert ids(s["camera"])[0] == s["lens"].pk
