"""How often one address, and one visitor, may post to ``events/``.

Two fixed-window counters in the shared cache (:func:`crosssell.services.ratelimit.allow`), on
top of the API's own throttle: per client address (by crosssell's one address rule, so a
rotating ``X-Forwarded-For`` buys nothing) and per visitor (the one the request acts as). The
rates are DRF scopes, ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["crosssell_events_address"]``
and ``["crosssell_events_visitor"]``, with the defaults below; ``None`` switches one off. A
storefront that posts for all its visitors from one server raises the address rate.

The storefront's own events (the impressions of widgets rendered in HTML pages, the clicks of
their ``?cs=&csp=`` links and the add-to-carts of their forms, recorded by
:class:`crosssell.middleware.TrackingMiddleware`) are limited too, counted in events rather than
requests and when they are written (:func:`crosssell.services.outbox.write`), so the page pays
nothing for it: per client address, ``["crosssell_storefront_address"]``, and per visitor,
``["crosssell_storefront_visitor"]``. Events beyond a rate are not recorded; the page is served
all the same. Purchases are never limited (checkout is the shop's to throttle).
"""

from __future__ import annotations

import logging
import time

from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.settings import api_settings

from crosssell.services import ratelimit

logger = logging.getLogger(__name__)

ADDRESS_SCOPE = "crosssell_events_address"
VISITOR_SCOPE = "crosssell_events_visitor"
STOREFRONT_ADDRESS_SCOPE = ratelimit.STOREFRONT_ADDRESS
STOREFRONT_VISITOR_SCOPE = ratelimit.STOREFRONT_VISITOR
#: Requests (of up to 50 events each) per address and per visitor, when the project sets none;
#: the storefront's scopes count events (a product page with two widgets records two).
DEFAULT_RATES = {
    ADDRESS_SCOPE: "600/minute",
    VISITOR_SCOPE: "120/minute",
    **ratelimit.STOREFRONT_DEFAULTS,
}


def rate(scope: str) -> ratelimit.Rate | None:
    """The scope's rate: the project's, else :data:`DEFAULT_RATES` (``None``: no limit)."""
    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    text = rates[scope] if scope in rates else DEFAULT_RATES[scope]
    if not text:
        return None
    try:
        return ratelimit.Rate.parse(str(text))
    except ValueError:
        logger.warning("%s: %r is not a rate; using %s", scope, text, DEFAULT_RATES[scope])
        return ratelimit.Rate.parse(DEFAULT_RATES[scope])


def check_address(request: Request) -> None:
    """Count one request of the client's address; 429 beyond the rate."""
    # Its events are limited here, per request: the storefront's limits do not count them.
    setattr(request._request, ratelimit.LIMITED, True)
    _check(ADDRESS_SCOPE, ratelimit.client_address(request._request), "this address")


def check_visitor(visitor: str) -> None:
    """Count one request of ``visitor``; 429 beyond the rate."""
    _check(VISITOR_SCOPE, visitor, "this visitor")


def _check(scope: str, key: str, who: str) -> None:
    limit = rate(scope)
    if limit is None or ratelimit.allow(scope, key, limit):
        return
    wait = limit.seconds - time.time() % limit.seconds
    raise Throttled(
        wait=wait,
        detail=f"Too many events from {who}: at most {limit.count} requests "
        f"in {limit.seconds} seconds.",
    )
