"""The API's throttle: DRF's scoped throttle, with the rate read per request."""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

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

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache being down must not take the recommendations with it
            logger.warning(
                "crosssell API throttle: cache unavailable, not throttling", exc_info=True
            )
            return True
