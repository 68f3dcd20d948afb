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


#: The storefront's event limits (see :func:`crosssell.services.outbox.write`): DRF throttle
#: scopes, ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]``, counted in events per client
#: address and per visitor, with these defaults (``None`` or ``""`` switches one off).
STOREFRONT_ADDRESS = "crosssell_storefront_address"
STOREFRONT_VISITOR = "crosssell_storefront_visitor"
STOREFRONT_DEFAULTS = {STOREFRONT_ADDRESS: "600/minute", STOREFRONT_VISITOR: "120/minute"}
#: The attribute set on a request whose events were limited per request already (the API's
#: ``events/``): the storefront's limits do not count them again.
LIMITED = "crosssell_events_limited"


def scope_rate(scope: str, default: str) -> Rate | None:
    """The rate of a throttle scope: the project's ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``
    entry, else ``default`` (``None``: no limit). Read from Django's settings, so it needs no
    REST framework; a rate that does not parse counts as ``default``."""
    rest = getattr(django_settings, "REST_FRAMEWORK", None) or {}
    rates = rest.get("DEFAULT_THROTTLE_RATES") or {}
    text = rates.get(scope, default)
    if not text:
        return None
    try:
        return Rate.parse(str(text))
    except ValueError:
        logger.warning("%s: %r is not a rate; using %s", scope, text, default)
        return Rate.parse(default)


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


def take(
    scope: str, counts: dict[tuple[str, int], int], rate: Rate | None
) -> dict[tuple[str, int], int]:
    """Count ``n`` events of each ``(key, window)`` in ``scope`` at once; how many of each are
    within the rate (the first ones of the window are).

    For events counted when they are written rather than when they happen (the storefront's,
    :func:`crosssell.services.outbox.write`): ``window`` is ``int(event time // rate.seconds)``,
    so a late write counts an event in the window it happened in. With Redis behind the cache
    the whole batch is one pipeline; a cache that is down lets everything through.
    """
    if rate is None:
        return dict(counts)
    ttl = rate.seconds + 3600  # a write may come late (the flush runs behind)
    cache = caches[settings.CACHE_ALIAS]
    keyed = {
        group: cache.make_key(
            f"crosssell:rl:{scope}:{hashlib.sha256(group[0].encode()).hexdigest()[:32]}:{group[1]}"
        )
        for group in counts
        if group[0]
    }
    totals: dict[tuple[str, int], int] = {}
    try:
        client = getattr(cache, "_cache", None)
        if client is not None and hasattr(client, "get_client"):
            pipe = client.get_client(write=True).pipeline(transaction=False)
            for group, key in keyed.items():
                pipe.incrby(key, counts[group])
                pipe.expire(key, ttl)
            answers = pipe.execute()
            totals = {group: int(answers[2 * i]) for i, group in enumerate(keyed)}
        else:
            for group, key in keyed.items():
                cache.add(key, 0, timeout=ttl)
                totals[group] = int(cache.incr(key, counts[group]))
    except Exception:
        logger.warning("crosssell rate limit: cache unavailable, not limiting", exc_info=True)
        return dict(counts)
    allowed = {}
    for group, n in counts.items():
        if group not in totals:  # an empty key is not counted
            allowed[group] = n
            continue
        before = totals[group] - n
        allowed[group] = max(0, min(n, rate.count - before))
    return allowed
