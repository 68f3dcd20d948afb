"""Rate limits of the storefront's writes: cart add and checkout, per address and per session."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from crosssell.services import ratelimit

logger = logging.getLogger(__name__)
View = Callable[..., HttpResponse]
WHAT = {"cart-add": "adding to the cart", "checkout": "checking out"}


def rate_limited(action: str) -> Callable[[View], View]:
    """Answer 429 to a POST beyond ``SHOP_RATE_LIMITS[action + ":address"]`` for the client's
    address (``crosssell.services.ratelimit.client_address``: a spoofed X-Forwarded-For is not a
    new client) or ``[action + ":session"]`` for its session."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "POST":
                refused = refusal(request, action)
                if refused is not None:
                    return refused
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def refusal(request: HttpRequest, action: str) -> HttpResponse | None:
    """The 429 answer when ``request`` goes over one of the action's limits, else ``None``."""
    rates: dict[str, str] = getattr(settings, "SHOP_RATE_LIMITS", {})
    session = getattr(request, "session", None)
    keys = {
        "address": ratelimit.client_address(request),
        "session": (session.session_key or "") if session is not None else "",
    }
    # Both counters count every request, so a client that alternates cannot slip through.
    over: list[ratelimit.Rate] = []
    for scope, key in keys.items():
        text = rates.get(f"{action}:{scope}")
        try:
            rate = ratelimit.Rate.parse(text) if text else None
        except ValueError:  # a typo in the environment must not take the cart down
            logger.error("SHOP_RATE_LIMITS[%r] = %r is not a rate: not limited", scope, text)
            continue
        if rate is not None and not ratelimit.allow(f"shop:{action}:{scope}", key, rate):
            over.append(rate)
    if not over:
        return None
    rate = max(over, key=lambda r: r.seconds)
    html = render_to_string(
        "shop/throttled.html",
        {"what": WHAT.get(action, action), "retry_after": rate.seconds},
        request=request,
    )
    response = HttpResponse(html, status=429)
    response["Retry-After"] = str(rate.seconds)
    return response
