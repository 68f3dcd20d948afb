"""Tracking on the server: the visitor's id, and a widget's clicks and add-to-carts.

- The visitor: a random id in a first-party cookie (``crosssell_visitor``), set on the first
  response that used it. A visitor who only looks costs no session row and no database write.
- A click: a recommended product's link ends in ``?cs=<impression token>&csp=<product id>``.
- An add-to-cart: the widget's form sends its impression token as ``cs`` with the chosen
  ``product_id`` values; a view that calls ``tracking.added_to_cart()`` has only the products
  it really added counted.

Both are queued (no database write in the request) and remembered in the session for
checkout's attribution, once the view has answered with a status below 400: a request that
failed CSRF, was throttled or named no product records nothing. The request's events (these
and the widgets' impressions) carry a hash of the client's address to the queue, where the
storefront's limits per address and per visitor count them as they are written
(:func:`crosssell.services.outbox.within_limits`); beyond them nothing is recorded and the page
is served the same. Add it after the session middleware:
``"crosssell.middleware.TrackingMiddleware"``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse

from crosssell.conf import settings
from crosssell.models import Event
from crosssell.services import ratelimit, tracking
from crosssell.services.ids import parse_id

PARAM = "cs"
PRODUCT_PARAM = "csp"
COOKIE_AGE = 365 * 24 * 3600


class TrackingMiddleware:
    """Give each visitor an id; record clicks (GET) and add-to-carts (POST) from a widget."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not settings.TRACKING:
            return self.get_response(request)
        known = request.COOKIES.get(tracking.COOKIE, "")
        fresh = not tracking.valid_visitor(known)
        request.crosssell_visitor = secrets.token_hex(16) if fresh else known  # type: ignore[attr-defined]
        with tracking.collecting() as held:
            response = self.get_response(request)
            # Recorded after the view, and only for a request that passed CSRF and succeeded: a
            # forged cross-site post (403), a missing product (404) or a throttled one (429)
            # records nothing and writes no session.
            if hasattr(request, "session") and response.status_code < 400:
                self.record(request)
            # The storefront's events count against the limits per address and per visitor
            # when they are written (outbox.within_limits), not here: the page pays nothing.
            # The API's events/ limited its own per request.
            if held.payload and not getattr(request, ratelimit.LIMITED, False):
                held.origin = ratelimit.client_address(request) or "-"
        if fresh and getattr(request, "crosssell_visitor_used", False):
            response.set_cookie(
                tracking.COOKIE,
                request.crosssell_visitor,  # type: ignore[attr-defined]
                max_age=COOKIE_AGE,
                httponly=True,
                samesite="Lax",
                secure=bool(getattr(django_settings, "SESSION_COOKIE_SECURE", False)),
            )
        return response

    @staticmethod
    def record(request: HttpRequest) -> None:
        if request.method == "GET":
            # Most pages have no query string: parse it only when the parameter may be there.
            if f"{PARAM}=" not in request.META.get("QUERY_STRING", "") or PARAM not in request.GET:
                return
            product = parse_id(request.GET.get(PRODUCT_PARAM, ""))
            if product is not None:
                tracking.record_touch(request, request.GET[PARAM], Event.Type.CLICK, product)
        elif request.method == "POST" and PARAM in request.POST:
            parsed = (parse_id(p) for p in request.POST.getlist("product_id")[:100])
            chosen = {p for p in parsed if p is not None}
            declared = getattr(request, "crosssell_added", None)  # tracking.added_to_cart()
            if declared is not None:
                chosen &= declared
            for token in dict.fromkeys(request.POST.getlist(PARAM)[:50]):
                data = tracking.read_token(token)
                if data is None:
                    continue
                for chosen_id in sorted(chosen & tracking.token_products(data)):
                    tracking.record_touch(request, token, Event.Type.ADD_TO_CART, chosen_id)
