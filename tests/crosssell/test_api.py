"""The REST API against a real build: success, bad input, privacy, queries, schema."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import NoReverseMatch, reverse
from rest_framework.test import APIClient

from crosssell.api.serializers import product_url
from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, user_customer_ref
from crosssell.services import cache as cs_cache
from crosssell.services.build import rebuild
from crosssell.services.purchases import Line, record_order
from crosssell.testing import make_product

pytestmark = pytest.mark.django_db

CART_URL = "crosssell-api:cart"
ME_URL = "crosssell-api:me"


def fbt_url(product_id: Any) -> str:
    return reverse("crosssell-api:frequently-bought-together", kwargs={"product_id": product_id})


@pytest.fixture(autouse=True)
def _clean_cache():
    # Serving caches ranked lists and throttles count in the cache: start every test empty.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


class Shop:
    """A small catalogue with a live build: A goes with B and C (5 customers) and D (3)."""

    def __init__(self, capture_on_commit: Any) -> None:
        User = get_user_model()
        self.a = make_product("Camera", category="Photo", price="499.00")
        self.b = make_product("Memory card", category="Photo", price="19.90")
        self.c = make_product("Camera bag", category="Photo", price="35.00")
        self.d = make_product("Tripod", category="Photo", price="60.00")
        self.e = make_product("Kettle", category="Kitchen", price="25.00")
        self.off = make_product("Discontinued lens", category="Photo", active=False)
        self.buyers = [User.objects.create_user(f"buyer{i}") for i in range(5)]
        for i, user in enumerate(self.buyers):
            ref = user_customer_ref(user)
            lines = [Line(p.pk) for p in (self.a, self.b, self.c, self.off)]
            record_order(f"o{i}-1", lines, customer_ref=ref)
            if i < 3:
                record_order(f"o{i}-2", [Line(self.a.pk), Line(self.d.pk)], customer_ref=ref)
        for i in range(4):
            record_order(f"guest{i}", [Line(self.e.pk)])
        # publish() bumps the cache generation on commit: run it, the test's transaction won't.
        with capture_on_commit(execute=True):
            self.build = rebuild(strategy=CoCount())
        assert self.build.state == Build.State.LIVE

    @property
    def sellable(self) -> list[Any]:
        return [self.a, self.b, self.c, self.d, self.e]


@pytest.fixture
def shop(db: None, django_capture_on_commit_callbacks: Any) -> Shop:
    return Shop(django_capture_on_commit_callbacks)


def ids(response: Any) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


# --- frequently bought together -------------------------------------------------------------


def test_fbt_returns_the_live_build_companions(api: APIClient, shop: Shop) -> None:
    response = api.get(fbt_url(shop.a.pk), {"limit": 3})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["build"] == shop.build.pk
    rows = body["results"]
    assert [r["id"] for r in rows[:2]] in ([shop.b.pk, shop.c.pk], [shop.c.pk, shop.b.pk])
    assert rows[2]["id"] == shop.d.pk
    assert {r["strategy"] for r in rows} == {"cocount"}
    by_id = {r["id"]: r for r in rows}
    assert by_id[shop.b.pk]["name"] == "Memory card"
    assert by_id[shop.b.pk]["price"] == "19.90"
    assert Decimal(by_id[shop.d.pk]["price"]) == Decimal("60.00")
    assert by_id[shop.b.pk]["url"] == shop.b.get_absolute_url()  # type: ignore[attr-defined]
    assert all("evidence" not in r for r in rows)
    # The score and the evidence are for users with the view permission (a count otherwise).
    assert set(rows[0]) == {"id", "name", "price", "url", "strategy"}


def test_fbt_default_limit_and_fallbacks(api: APIClient, shop: Shop) -> None:
    response = api.get(fbt_url(shop.a.pk))
    assert response.status_code == 200
    got = ids(response)
    assert len(got) == 4  # CROSSSELL_DEFAULT_LIMIT
    assert shop.a.pk not in got and shop.off.pk not in got
    assert got[3] == shop.e.pk  # the only other sellable product fills the list


@override_settings(CROSSSELL_DEFAULT_LIMIT=2, CROSSSELL_MAX_LIMIT=3)
def test_limits_follow_the_settings(api: APIClient, shop: Shop) -> None:
    assert len(ids(api.get(fbt_url(shop.a.pk)))) == 2
    assert api.get(fbt_url(shop.a.pk), {"limit": 3}).status_code == 200
    response = api.get(fbt_url(shop.a.pk), {"limit": 4})
    assert response.status_code == 400
    assert "less than or equal to 3" in response.json()["limit"][0]


def test_fbt_without_a_live_build(api: APIClient, db: None) -> None:
    a, b = make_product("A"), make_product("B")
    response = api.get(fbt_url(a.pk))
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body.pop("impression"), str)  # tracking is on by default
    assert body == {
        "build": None,
        "results": [
            {
                "id": b.pk,
                "name": "B",
                "price": "10.00",
                "url": product_url(b),
                "strategy": "bestsellers",
            }
        ],
    }


@pytest.mark.parametrize("limit", ["0", "51", "x", "-1", "1.5", "1e3", "9" * 40, ""])
def test_fbt_bad_limit_is_400_with_the_reason(api: APIClient, shop: Shop, limit: str) -> None:
    response = api.get(fbt_url(shop.a.pk), {"limit": limit})
    assert response.status_code == 400
    reasons = response.json()["limit"]
    assert reasons and all(isinstance(r, str) and r for r in reasons)


def test_fbt_limit_reasons(api: APIClient, shop: Shop) -> None:
    assert api.get(fbt_url(shop.a.pk), {"limit": 0}).json() == {
        "limit": ["Ensure this value is greater than or equal to 1."]
    }
    assert api.get(fbt_url(shop.a.pk), {"limit": 51}).json() == {
        "limit": ["Ensure this value is less than or equal to 50."]
    }
    assert api.get(fbt_url(shop.a.pk), {"limit": "x"}).json() == {
        "limit": ["A valid integer is required."]
    }


@pytest.mark.parametrize("which", ["unknown", "inactive", "unpriced", "zero", "word", "huge"])
def test_fbt_unknown_or_unsellable_product_is_404(api: APIClient, shop: Shop, which: str) -> None:
    product_id = {
        "unknown": str(max(p.pk for p in shop.sellable) + 1000),
        "inactive": str(shop.off.pk),
        "unpriced": str(make_product("Free sample", price="0").pk),
        "zero": "0",
        "word": "camera",
        "huge": "9" * 30,  # beyond a 64-bit key: must not reach the database
    }[which]
    response = api.get(fbt_url(product_id))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "No such product, or it is not for sale."}


# --- cart ---------------------------------------------------------------------------------


def post_cart(api: APIClient, body: Any) -> Any:
    return api.post(reverse(CART_URL), body, format="json")


def test_cart_never_recommends_an_item_of_the_cart(api: APIClient, shop: Shop) -> None:
    response = post_cart(api, {"product_ids": [shop.a.pk, shop.b.pk], "limit": 10})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["build"] == shop.build.pk
    got = [r["id"] for r in body["results"]]
    assert got[0] == shop.c.pk  # bought with both A and B: the scores add up
    assert shop.d.pk in got
    assert not {shop.a.pk, shop.b.pk, shop.off.pk} & set(got)
    assert len(got) == len(set(got))


def test_cart_with_an_unknown_id_among_known_ones(api: APIClient, shop: Shop) -> None:
    unknown = max(p.pk for p in shop.sellable) + 1000
    response = post_cart(api, {"product_ids": [unknown, shop.a.pk, shop.a.pk]})
    assert response.status_code == 200
    got = ids(response)
    assert len(got) == 4 and shop.a.pk not in got and unknown not in got


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"product_ids": list(range(1, 10_001))}, "product_ids", "no more than 100 elements"),
        ({"product_ids": ["1", "2"]}, "product_ids", "valid integer"),
        ({"product_ids": [True]}, "product_ids", "valid integer"),
        ({"product_ids": [1.5]}, "product_ids", "valid integer"),
        ({"product_ids": []}, "product_ids", "at least 1 elements"),
        ({"product_ids": "1,2"}, "product_ids", "list of items"),
        ({"product_ids": [0]}, "product_ids", "greater than or equal to 1"),
        ({"product_ids": [2**64]}, "product_ids", "less than or equal to"),
        ({}, "product_ids", "required"),
        ({"product_ids": [10**15, 10**15 + 1]}, "product_ids", "None of these products exists"),
        ({"product_ids": ["A"], "limit": 2}, "product_ids", "valid integer"),
        ({"product_ids": [1], "limit": 0}, "limit", "greater than or equal to 1"),
        ({"product_ids": [1], "limit": 51}, "limit", "less than or equal to 50"),
        ({"product_ids": [1], "limit": "x"}, "limit", "valid integer"),
        ({"product_ids": [1], "limit": "4"}, "limit", "valid integer"),
    ],
)
def test_cart_bad_input_is_400_with_the_reason(
    api: APIClient, shop: Shop, body: dict[str, Any], field: str, reason: str
) -> None:
    response = post_cart(api, body)
    assert response.status_code == 400, response.content
    assert reason in str(response.json()[field])


def test_cart_body_must_be_a_json_object(api: APIClient, shop: Shop) -> None:
    url = reverse(CART_URL)
    assert api.post(url, "[1, 2]", content_type="application/json").status_code == 400
    assert api.post(url, "{not json", content_type="application/json").status_code == 400
    response = api.post(url, "product_ids=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    deep = '{"product_ids": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.post(url, deep, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


# --- me -----------------------------------------------------------------------------------


def test_me_requires_a_signed_in_user(api: APIClient, shop: Shop) -> None:
    response = api.get(reverse(ME_URL))
    assert response.status_code in (401, 403)
    assert "results" not in response.json()


def test_me_uses_only_the_customers_own_purchases(api: APIClient, shop: Shop) -> None:
    User = get_user_model()
    camera_buyer = User.objects.create_user("camera-buyer")
    card_buyer = User.objects.create_user("card-buyer")
    record_order("me-1", [Line(shop.a.pk)], customer_ref=user_customer_ref(camera_buyer))
    record_order("me-2", [Line(shop.b.pk)], customer_ref=user_customer_ref(card_buyer))

    api.force_login(camera_buyer)
    # A parameter naming another customer is not an input of this endpoint.
    response = api.get(reverse(ME_URL), {"limit": 3, "customer": card_buyer.pk})
    assert response.status_code == 200
    assert response.json()["build"] == shop.build.pk
    mine = ids(response)
    assert set(mine) == {shop.b.pk, shop.c.pk, shop.d.pk}  # A's companions, never A itself

    api.force_login(card_buyer)
    theirs = ids(api.get(reverse(ME_URL), {"limit": 3}))
    assert shop.b.pk not in theirs
    assert theirs[:2] in ([shop.a.pk, shop.c.pk], [shop.c.pk, shop.a.pk])


def test_me_without_history_gets_bestsellers(api: APIClient, shop: Shop) -> None:
    api.force_login(get_user_model().objects.create_user("newcomer"))
    response = api.get(reverse(ME_URL))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert len(rows) == 4 and {r["strategy"] for r in rows} == {"bestsellers"}
    assert rows[0]["id"] == shop.a.pk  # the most often bought


def test_me_bad_limit(api: APIClient, shop: Shop) -> None:
    api.force_login(shop.buyers[0])
    for limit in ("0", "51", "x"):
        response = api.get(reverse(ME_URL), {"limit": limit})
        assert response.status_code == 400 and "limit" in response.json()


# --- evidence is for users with the view permission on recommendations ---------------------


def test_evidence_only_with_the_view_permission(api: APIClient, shop: Shop) -> None:
    User = get_user_model()
    url = fbt_url(shop.a.pk)
    api.force_login(User.objects.create_user("customer"))
    hidden = {"evidence", "score"}
    assert all(not hidden & set(r) for r in api.get(url).json()["results"])
    cart = post_cart(api, {"product_ids": [shop.a.pk]}).json()["results"]
    assert cart and all(not hidden & set(r) for r in cart)

    # Staff is not enough (the probe: any staff user got the evidence).
    api.force_login(User.objects.create_user("clerk", is_staff=True))
    assert all(not hidden & set(r) for r in api.get(url, {"limit": 3}).json()["results"])
    assert all(not hidden & set(r) for r in api.get(reverse(ME_URL)).json()["results"])
    cart = post_cart(api, {"product_ids": [shop.a.pk]}).json()["results"]
    assert cart and all(not hidden & set(r) for r in cart)

    merchant = User.objects.create_user("merchant", is_staff=True)
    merchant.user_permissions.add(Permission.objects.get(codename="view_recommendation"))
    api.force_login(merchant)
    rows = api.get(url, {"limit": 3}).json()["results"]
    by_id = {r["id"]: r for r in rows}
    assert by_id[shop.b.pk]["evidence"]["co_count"] == 5
    assert by_id[shop.d.pk]["evidence"]["co_count"] == 3
    assert by_id[shop.d.pk]["evidence"]["customers"] == 3
    assert rows[0]["score"] > rows[2]["score"] > 0
    me = api.get(reverse(ME_URL)).json()["results"]
    assert all("evidence" in r for r in me)
    cart = post_cart(api, {"product_ids": [shop.a.pk]}).json()["results"]
    assert cart and all("evidence" in r for r in cart)  # the cart endpoint shows it too


# --- queries --------------------------------------------------------------------------------


def count_queries(make_request: Any) -> int:
    cache.clear()
    cs_cache.forget_local()  # what the process keeps of the cache, too
    with CaptureQueriesContext(connection) as ctx:
        response = make_request()
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


def test_query_counts_do_not_grow_with_the_limit(api: APIClient, shop: Shop) -> None:
    fbt = {n: count_queries(lambda n=n: api.get(fbt_url(shop.a.pk), {"limit": n})) for n in (2, 10)}
    cart = {
        n: count_queries(
            lambda n=n: post_cart(api, {"product_ids": [shop.a.pk, shop.e.pk], "limit": n})
        )
        for n in (2, 10)
    }
    api.force_login(shop.buyers[3])
    me = {n: count_queries(lambda n=n: api.get(reverse(ME_URL), {"limit": n})) for n in (2, 10)}
    # Cold cache: the product, the ranked ids, the fallbacks, the exclusions, the products of
    # the list, the live build... a constant that must not depend on the limit.
    assert fbt[2] == fbt[10] <= 12
    assert cart[2] == cart[10] <= 12
    assert me[2] == me[10] <= 14  # plus the session, the user and the customer's history


def test_a_warm_cache_saves_queries(api: APIClient, shop: Shop) -> None:
    cold = count_queries(lambda: api.get(fbt_url(shop.a.pk)))
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(fbt_url(shop.a.pk)).status_code == 200
    # The product, the live build and the products of the list: the ranked ids are cached.
    assert len(ctx.captured_queries) <= 4 < cold


# --- throttling ---------------------------------------------------------------------------


def test_throttled_with_the_crosssell_rate(api: APIClient, shop: Shop, settings: Any) -> None:
    rates = {**settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}), "crosssell": "3/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    url = fbt_url(shop.a.pk)
    assert [api.get(url).status_code for _ in range(3)] == [200, 200, 200]
    response = api.get(url)
    assert response.status_code == 429
    assert "throttled" in response.json()["detail"].lower()
    assert post_cart(api, {"product_ids": [shop.a.pk]}).status_code == 429  # one scope


# --- the OpenAPI schema ---------------------------------------------------------------------


def test_schema_validates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for operation in (
        "crosssell_frequently_bought_together",
        "crosssell_cart_recommendations",
        "crosssell_my_recommendations",
    ):
        assert f"operationId: {operation}" in text
    assert "RecommendationList" in text and "'429'" in text


@pytest.fixture
def shop_urls() -> None:
    try:
        reverse("schema")
    except NoReverseMatch:
        pytest.skip("the sample shop's URLs (schema and Swagger) are not installed")


def test_schema_and_swagger_are_served(api: APIClient, shop_urls: None) -> None:
    schema = api.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/crosssell/products/{product_id}/frequently-bought-together/" in paths
    assert set(paths["/api/crosssell/cart/recommendations/"]) == {"post"}
    docs = api.get(reverse("swagger-ui"))
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


def test_product_url_is_null_without_get_absolute_url() -> None:
    class Bare:
        pk = 1

    assert product_url(Bare()) is None  # type: ignore[arg-type]


def test_drf_is_imported_only_by_crosssell_api() -> None:
    package = Path(__file__).resolve().parents[2] / "crosssell"
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "api" not in path.relative_to(package).parts[:1]
        and any(
            line.lstrip().startswith(("import rest_framework", "from rest_framework"))
            or line.lstrip().startswith(("import drf_spectacular", "from drf_spectacular"))
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []
