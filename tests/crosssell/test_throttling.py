"""Throttles key on the client's real address: a rotating X-Forwarded-For is not a new client
unless the project declares the proxies that write it."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from crosssell.services import ratelimit
from crosssell.testing import make_product

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_cache() -> Any:
    cache.clear()  # throttles count in the cache
    yield
    cache.clear()


def with_rates(settings: Any, **extra: Any) -> None:
    rest = dict(settings.REST_FRAMEWORK)
    rates = {**rest.get("DEFAULT_THROTTLE_RATES", {}), "crosssell": "5/minute"}
    settings.REST_FRAMEWORK = {**rest, "DEFAULT_THROTTLE_RATES": rates, **extra}


def rotating_statuses(url: str, n: int = 40, **headers: str) -> list[int]:
    """``n`` anonymous requests, each with a new X-Forwarded-For (and no cookie)."""
    statuses = []
    for i in range(n):
        client = APIClient()
        forwarded = f"10.{i // 250}.{i % 250}.7"
        response = client.get(url, HTTP_X_FORWARDED_FOR=forwarded, **headers)
        statuses.append(response.status_code)
    return statuses


def test_a_rotating_forwarded_for_is_still_throttled(settings: Any) -> None:
    # The probe: 700 requests with a rotating header got no 429 (NUM_PROXIES unset).
    with_rates(settings, NUM_PROXIES=None)
    product = make_product()
    url = reverse("crosssell-api:frequently-bought-together", kwargs={"product_id": product.pk})
    statuses = rotating_statuses(url)
    assert statuses[:5] == [200] * 5
    assert set(statuses[5:]) == {429}


def test_behind_one_proxy_the_address_it_appends_is_the_client(settings: Any) -> None:
    # One proxy: the client may write anything left of what the proxy appends; the last entry
    # (the address the proxy saw) keys the throttle.
    with_rates(settings, NUM_PROXIES=1)
    product = make_product()
    url = reverse("crosssell-api:frequently-bought-together", kwargs={"product_id": product.pk})
    statuses = []
    for i in range(12):
        response = APIClient().get(url, HTTP_X_FORWARDED_FOR=f"6.6.6.{i}, 203.0.113.9")
        statuses.append(response.status_code)
    assert statuses == [200] * 5 + [429] * 7
    # Another client behind the same proxy has its own allowance.
    other = APIClient().get(url, HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("own", "drf", "forwarded", "expected"),
    [
        (None, None, "1.1.1.1", "127.0.0.9"),  # nothing declared: the header is ignored
        (None, 0, "1.1.1.1", "127.0.0.9"),
        (None, 1, "1.1.1.1, 2.2.2.2", "2.2.2.2"),
        (None, 2, "1.1.1.1, 2.2.2.2, 3.3.3.3", "2.2.2.2"),
        (1, None, "1.1.1.1, 2.2.2.2", "2.2.2.2"),  # crosssell's own setting wins
        (0, 1, "1.1.1.1, 2.2.2.2", "127.0.0.9"),
        (3, None, "5.5.5.5", "5.5.5.5"),  # fewer hops than proxies: the leftmost
        (1, None, None, "127.0.0.9"),  # no header at all
        ("2", None, "1.1.1.1, 2.2.2.2", "127.0.0.9"),  # not an int: counts as 0 (W042)
    ],
)
def test_client_address(settings: Any, own: Any, drf: Any, forwarded: Any, expected: str) -> None:
    settings.CROSSSELL_NUM_PROXIES = own
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": drf}
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.9", **headers)
    assert ratelimit.client_address(request) == expected


def test_allow_counts_per_scope_and_key() -> None:
    assert [ratelimit.allow("t", "a", "3/minute") for _ in range(5)] == [True] * 3 + [False] * 2
    assert ratelimit.allow("t", "b", "3/minute")  # another key
    assert ratelimit.allow("u", "a", "3/minute")  # another scope
    assert ratelimit.allow("t", "a", None) and ratelimit.allow("t", "", "1/minute")
    assert ratelimit.Rate.parse("10/hour") == ratelimit.Rate(10, 3600)
    with pytest.raises(ValueError):
        ratelimit.Rate.parse("ten/minute")
