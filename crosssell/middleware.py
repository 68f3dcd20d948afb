"""Tracking on the server: the visitor's id, and a widget's clicks and add-to-carts.

- The visitor: a random id in a first-party cookie (``crosssell_visitor``), set on the first
  response that used it. A visitor who only looks costs no session row and no database write.
- A click: a recommended product's link ends in ``?cs=<impression token>&csp=<product id>``.
- An add-to-cart: the widget's form sends its impression token as ``cs`` with the chosen
  ``product_id`` values.

Both are queued (no database write in the request) and remembered in the session for
checkout's attribution. Add it after the session middleware:
``"crosssell.middleware.TrackingMiddleware"``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse

from crosssell.conf import settings
from crosssell.models import Event
from crosssell.services import tracking

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
        with tracking.collecting():
            if hasattr(request, "session"):
                self.record(request)
            response = self.get_response(request)
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
            product = request.GET.get(PRODUCT_PARAM, "")
            if product.isascii() and product.isdigit():
                tracking.record_touch(request, request.GET[PARAM], Event.Type.CLICK, int(product))
        elif request.method == "POST" and PARAM in request.POST:
            chosen = {
                int(p)
                for p in request.POST.getlist("product_id")[:100]
                if p.isascii() and p.isdigit() and len(p) < 19
            }
            for token in dict.fromkeys(request.POST.getlist(PARAM)[:50]):
                data = tracking.read_token(token)
                if data is None:
                    continue
                for chosen_id in sorted(chosen & tracking.token_products(data)):
                    tracking.record_touch(request, token, Event.Type.ADD_TO_CART, chosen_id)
