"""Captures a widget's click or add-to-cart: the request carries the item's signed token.

A recommended product's link ends in ``?cs=<token>``, and the widget's "add to cart" form sends
one ``cs`` value per item; this middleware records the event (buffered, no database write) and
remembers the touch in the session for checkout's attribution. Add it after the session
middleware: ``"crosssell.middleware.TrackingMiddleware"``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from crosssell.conf import settings
from crosssell.models import Event
from crosssell.services import tracking

PARAM = "cs"


class TrackingMiddleware:
    """Record clicks (GET) and add-to-carts (POST) that came from a widget."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.TRACKING and hasattr(request, "session"):
            if request.method == "GET" and PARAM in request.GET:
                tracking.record_touch(request.session, request.GET[PARAM], Event.Type.CLICK)
            elif request.method == "POST" and PARAM in request.POST:
                chosen = set(request.POST.getlist("product_id"))
                for token in request.POST.getlist(PARAM)[:50]:
                    data = tracking.read_token(token)
                    if data and str(data.get("p")) in chosen:
                        tracking.record_touch(request.session, token, Event.Type.ADD_TO_CART)
        return self.get_response(request)
