"""Who is asking, and how often: the client's address by one documented rule, and a
fixed-window rate limit in the shared cache.

The address rule is the one Django REST framework's throttles use, with a safer default:
``X-Forwarded-For`` is trusted only as far as the project says it runs behind proxies
(``CROSSSELL_NUM_PROXIES``, else ``REST_FRAMEWORK["NUM_PROXIES"]``, else 0). With 0 the header
is ignored and the address is ``REMOTE_ADDR``: a client cannot pick its own throttle key by
sending the header. With ``n`` proxies the address is the ``n``-th entry from the right, the one
the outermost trusted proxy appended.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.core.cache import caches
from django.http import HttpRequest

from crosssell.conf import settings

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
           "hour": 3600, "d": 86400, "day": 86400}  # fmt: skip


def num_proxies() -> int:
    """How many proxies in front of the site append to ``X-Forwarded-For`` (0: trust none).

    ``CROSSSELL_NUM_PROXIES`` when set, else ``REST_FRAMEWORK["NUM_PROXIES"]`` (so that the API's
    throttles and crosssell's agree), else 0. A value that is not a non-negative integer counts
    as 0 (system check ``crosssell.W042`` reports it).
    """
    value: Any = settings.NUM_PROXIES
    if value is None:
        value = (getattr(django_settings, "REST_FRAMEWORK", None) or {}).get("NUM_PROXIES")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def client_address(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or the entry of ``X-Forwarded-For`` the trusted
    proxies vouch for (see :func:`num_proxies`)."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    proxies = num_proxies()
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not proxies or not forwarded:
        return remote
    hops = [hop.strip() for hop in str(forwarded).split(",")]
    return hops[-min(proxies, len(hops))] or remote


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``seconds``."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"10/minute"``, ``"5/s"``, ``"100/hour"`` (DRF's notation)."""
        count, _, period = text.partition("/")
        seconds = PERIODS.get(period.strip().lower())
        if not count.strip().isdigit() or seconds is None:
            raise ValueError(f"Not a rate: {text!r} (expected like '10/minute').")
        return cls(int(count), seconds)


def allow(scope: str, key: str, rate: Rate | str | None) -> bool:
    """Count one request of ``key`` in ``scope``; ``False`` once the rate is exceeded.

    Parameters
    ----------
    scope
        What is limited (``"cart-add:address"``); each scope counts on its own.
    key
        Who is counted: an address, a session key, a visitor id. An empty key is not counted.
    rate
        The limit; ``None`` or ``""`` means no limit.

    Returns
    -------
    bool
        Whether the request may go on. A cache that is down lets every request through: a
        rate limit must not take the shop with it.
    """
    if not rate or not key:
        return True
    limit = rate if isinstance(rate, Rate) else Rate.parse(rate)
    window = int(time.time() // limit.seconds)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # any key length, no raw address
    cache_key = f"crosssell:rl:{scope}:{digest}:{window}"
    cache = caches[settings.CACHE_ALIAS]
    try:
        if cache.add(cache_key, 1, timeout=limit.seconds + 1):
            return True
        return int(cache.incr(cache_key)) <= limit.count
    except ValueError:  # the key expired between add and incr: a new window
        return True
    except Exception:
        logger.warning("crosssell rate limit: cache unavailable, not limiting", exc_info=True)
        return True
