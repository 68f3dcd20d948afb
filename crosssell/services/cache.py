"""The cache: keys carry a generation that every publish, pin or erasure renews, so the change
takes effect at once without sweeping anything. Every call survives a cache that is down.

The generation is shared by every process: it lives in the cache when processes share it
(Redis, memcached), and in the database (:class:`crosssell.models.CacheGeneration`) when the
cache is each process's own memory (``LocMemCache``, the embedded default), so a command's
bump (a rebuild, an erasure) reaches the web processes too. A process remembers it for
:data:`LOCAL_SECONDS`: another process's change is seen within that time.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import caches
from django.db import transaction

from crosssell.conf import settings

logger = logging.getLogger(__name__)
T = TypeVar("T")
VERSION_KEY = "crosssell:version"
_MISS = object()


def _cache() -> Any:
    return caches[settings.CACHE_ALIAS]


#: The generation is remembered in the process for this long, saving a cache round trip per
#: widget; another process's publish or pin is seen within this time, this process's at once.
LOCAL_SECONDS = 1.0
_local: dict[str, Any] = {"value": "", "at": 0.0}
#: Values asked for with ``local=True`` are also kept in the process, for the generation they
#: were computed in: a hot widget then costs no round trip at all. Bounded, oldest out first.
LOCAL_VALUES = 4096
_values: dict[str, tuple[str, Any]] = {}


def forget_local() -> None:
    """Drop what this process remembers (after the cache is cleared)."""
    _local.update(value="", at=0.0)
    _values.clear()


def process_local() -> bool:
    """Whether the cache is this process's own memory (not shared with other processes)."""
    from django.core.cache.backends.locmem import LocMemCache

    return isinstance(_cache(), LocMemCache)


def version() -> str:
    """The current cache generation (changes with every publish and every curation)."""
    now = time.monotonic()
    if _local["value"] and now - _local["at"] < LOCAL_SECONDS:
        return str(_local["value"])
    try:
        if process_local():
            value = _stored_version()
        else:
            value = _cache().get(VERSION_KEY)
            if value is None:
                value = _fresh_version()
                _cache().add(VERSION_KEY, value, None)
    except Exception:  # a cache that is down must never break a page
        logger.warning("crosssell cache unavailable; serving from the database", exc_info=True)
        forget_local()
        return ""
    _local.update(value=str(value), at=now)
    return str(value)


def _fresh_version() -> str:
    # Unique per bump, so any change (a publish, a pin, an exclusion) starts a new generation.
    return uuid.uuid4().hex[:12]


def _stored_version() -> str:
    """The generation kept in the database, for a cache no other process sees."""
    from crosssell.models import CacheGeneration

    row, _ = CacheGeneration.objects.get_or_create(
        name=settings.CACHE_ALIAS, defaults={"value": _fresh_version()}
    )
    return row.value


def bump() -> None:
    """Start a new cache generation (after a publish or a merchant's change)."""
    fresh = _fresh_version()
    forget_local()
    try:
        if process_local():
            from crosssell.models import CacheGeneration

            CacheGeneration.objects.update_or_create(
                name=settings.CACHE_ALIAS, defaults={"value": fresh}
            )
        _cache().set(VERSION_KEY, fresh, None)
    except Exception:
        logger.warning("crosssell cache unavailable; could not bump the version", exc_info=True)


def bump_on_commit() -> None:
    """Start a new cache generation once the current transaction commits (at once outside one).

    The one way a change announces itself to the cached lists and widgets (a pin, a build made
    live, a product or purchase written behind the signals, an erasure): a rolled-back change
    starts none, and no reader sees the new generation before the change is visible.
    """
    transaction.on_commit(bump)


def get_or_set(key: str, compute: Callable[[], T], *, local: bool = False) -> T:
    """``compute()`` cached under ``key`` in the current generation; computed when the cache
    is down (never an error).

    With ``local=True`` the value is also kept in this process until the generation changes
    (seen within :data:`LOCAL_SECONDS`); it must then be immutable, since every caller in the
    process shares it.
    """
    gen = version()
    if not gen:
        return compute()
    if local:
        held = _values.get(key)
        if held is not None and held[0] == gen:
            return held[1]
    # Hashed: keys may hold spaces or be long (a cart's ids), which memcached refuses.
    full = f"crosssell:{gen}:{hashlib.sha1(key.encode()).hexdigest()}"
    try:
        value = _cache().get(full, _MISS)
    except Exception:
        logger.warning("crosssell cache read failed", exc_info=True)
        return compute()
    if value is _MISS:
        value = compute()
        try:
            _cache().set(full, value, settings.CACHE_TIMEOUT)
        except Exception:
            logger.warning("crosssell cache write failed", exc_info=True)
    if local:
        if len(_values) >= LOCAL_VALUES:
            _values.pop(next(iter(_values)))
        _values[key] = (gen, value)
    return value
