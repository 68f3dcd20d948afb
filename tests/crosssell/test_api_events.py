"""``POST /api/crosssell/events/``: impressions, clicks and add-to-carts of a headless
storefront, carried by the list's signed impression token."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from crosssell.models import Event, Experiment, Impression, Purchase, Variant
from crosssell.services import tracking
from crosssell.services.build import rebuild
from crosssell.testing import make_product

pytestmark = pytest.mark.django_db
EVENTS = "crosssell-api:events"


def fbt_url(pk: int) -> str:
    return reverse("crosssell-api:frequently-bought-together", kwargs={"product_id": pk})


@pytest.fixture
def shop(db: None) -> dict[str, Any]:
    a, b, c = (make_product(n, price="10.00") for n in ("A", "B", "C"))
    rows = []
    for i in range(4):
        rows += [Purchase(order_ref=f"O{i}", customer_ref=f"c{i}", product=p) for p in (a, b, c)]
    Purchase.objects.bulk_create(rows)
    rebuild(trigger="test")
    cache.clear()
    return {"a": a, "b": b, "c": c}


def listed(api: APIClient, pk: int) -> dict[str, Any]:
    response = api.get(fbt_url(pk), {"limit": 2})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def post(api: APIClient, body: Any) -> Any:
    return api.post(reverse(EVENTS), body, format="json")


def test_an_impression_and_a_click_are_recorded_once(shop: dict[str, Any]) -> None:
    api = APIClient()  # a storefront whose calls carry no cookie names its visitor on both
    body = api.get(fbt_url(shop["a"].pk), {"limit": 2, "visitor": "headless-7"}).json()
    shown = [r["id"] for r in body["results"]]
    token = body["impression"]
    events = [
        {"type": "impression", "impression": token},
        {"type": "impression", "impression": token},  # a retried post
        {"type": "click", "impression": token, "product_id": shown[0]},
    ]
    response = post(api, {"events": events, "visitor": "headless-7"})
    assert (response.status_code, response.json()) == (202, {"accepted": 3})
    assert tracking.flush() == 3  # queued: the impression twice (written once) and the click
    impression = Impression.objects.get()
    assert impression.placement == "product"
    assert impression.sources == [shop["a"].pk]
    assert impression.products == shown
    assert impression.visitor == "headless-7"
    click = Event.objects.get()
    assert (click.type, click.product_id, click.impression_id) == ("click", shown[0], impression.id)


def test_each_list_has_its_own_token(shop: dict[str, Any]) -> None:
    api = APIClient()
    assert listed(api, shop["a"].pk)["impression"] != listed(api, shop["a"].pk)["impression"]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "click", "impression": "forged:token"}, "impression"),
        ({"type": "teleport", "impression": "x"}, "type"),
        ({"type": "click", "product_id": 1}, "impression"),
    ],
)
def test_a_bad_event_is_refused_with_its_reason(
    shop: dict[str, Any], event: dict[str, Any], field: str
) -> None:
    response = post(APIClient(), {"events": [event]})
    assert response.status_code == 400
    assert field in response.json()["events"]["0"]
    assert tracking.pending() == 0


def test_a_product_the_list_did_not_show_is_refused_and_nothing_is_recorded(
    shop: dict[str, Any],
) -> None:
    api = APIClient()
    token = listed(api, shop["a"].pk)["impression"]
    response = post(
        api,
        {
            "events": [
                {"type": "impression", "impression": token},
                {"type": "click", "impression": token, "product_id": shop["a"].pk},
            ]
        },
    )
    assert response.status_code == 400
    assert "did not show" in response.json()["events"]["1"]["product_id"][0]
    assert tracking.pending() == 0  # all or nothing


def test_a_click_needs_its_product(shop: dict[str, Any]) -> None:
    api = APIClient()
    token = listed(api, shop["a"].pk)["impression"]
    response = post(api, {"events": [{"type": "click", "impression": token}]})
    assert response.status_code == 400
    assert "product_id" in response.json()["events"]["0"]


@pytest.mark.parametrize(
    "body",
    [{}, {"events": []}, {"events": "x"}, {"events": [{}] * 51}, {"events": [], "visitor": "a b"}],
    ids=["missing", "empty", "not-a-list", "too-many", "bad-visitor"],
)
def test_a_bad_batch_is_refused(shop: dict[str, Any], body: dict[str, Any]) -> None:
    assert post(APIClient(), body).status_code == 400


def test_a_body_that_is_not_json_is_refused(db: None) -> None:
    response = APIClient().post(reverse(EVENTS), "type=click", content_type="text/plain")
    assert response.status_code == 415


def test_a_widget_token_cannot_be_posted_as_an_impression(shop: dict[str, Any]) -> None:
    # A server-rendered widget recorded its impression already; its token has no placement.
    shown = tracking.record_impression("product", "v", [shop["a"].pk], [shop["b"].pk], ["x"])
    response = post(APIClient(), {"events": [{"type": "impression", "impression": shown.token}]})
    assert response.status_code == 400
    click = {"type": "click", "impression": shown.token, "product_id": shop["b"].pk}
    assert post(APIClient(), {"events": [click], "visitor": "v"}).status_code == 202


def test_the_holdout_gets_no_recommendations_but_a_token(
    shop: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        exp = Experiment.objects.create(name="api holdout", placement="product")
        holdout = Variant.objects.create(experiment=exp, name="none", holdout=True)
    api = APIClient()
    body = listed(api, shop["a"].pk)
    assert body["results"] == []
    assert post(api, {"events": [{"type": "impression", "impression": body["impression"]}]})
    tracking.flush()
    assert Impression.objects.get().variant_id == holdout.pk


def test_tracking_off_accepts_and_records_nothing(shop: dict[str, Any], settings: Any) -> None:
    settings.CROSSSELL_TRACKING = False
    api = APIClient()
    assert listed(api, shop["a"].pk)["impression"] is None
    response = post(api, {"events": [{"type": "click", "impression": "x:y"}]})
    assert response.status_code == 400  # still validated
    assert tracking.pending() == 0
