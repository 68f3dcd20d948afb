"""The API's throttle: DRF's scoped throttle, with the rate read per request and the client's
address by crosssell's rule (``X-Forwarded-For`` only as far as the proxy count vouches)."""

from __future__ import annotations

import logging
from typing import Any

from django.utils.module_loading import import_string
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, ScopedRateThrottle
from rest_framework.views import APIView

from crosssell.services.ratelimit import client_address

logger = logging.getLogger(__name__)

#: The key of the rate in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``.
SCOPE = "crosssell"


class CrosssellRateThrottle(ScopedRateThrottle):
    """Scoped rate limit; unthrottled when the project sets no rate for the scope."""

    def get_rate(self) -> str | None:
        # DRF copies the rates into a class attribute at import, which override_settings and
        # a project that sets REST_FRAMEWORK late would never reach: read them now instead.
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES or {}
        rate = rates.get(self.scope or "")
        return str(rate) if rate else None

    def get_ident(self, request: Request) -> str:
        # DRF trusts the raw X-Forwarded-For when NUM_PROXIES is unset: a client that rotates
        # the header would get a fresh allowance on every request. Unset means 0 here.
        return client_address(request._request)

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache being down must not take the recommendations with it
            logger.warning(
                "crosssell API throttle: cache unavailable, not throttling", exc_info=True
            )
            return True


def spoofable_throttles(paths: Any) -> list[str]:
    """Those of the throttle classes ``paths`` (dotted paths or classes) that key anonymous
    clients with DRF's own ``get_ident``: on the raw X-Forwarded-For when ``NUM_PROXIES`` is
    unset (system check ``crosssell.W040``)."""
    found = []
    for path in paths:
        try:
            cls = import_string(path) if isinstance(path, str) else path
        except ImportError:
            continue  # DRF reports a bad path itself
        if getattr(cls, "get_ident", None) is BaseThrottle.get_ident:
            found.append(path if isinstance(path, str) else getattr(cls, "__name__", str(cls)))
    return found
