"""A lock in the cache (Redis in production: ``SET NX`` with an expiry), so that two rebuilds never
run at once on any machine. It expires by itself when its holder dies (a killed worker), and the
holder keeps it alive while it works."""

from __future__ import annotations

import logging
import time
import uuid

from django.core.cache import caches

from crosssell.conf import settings

logger = logging.getLogger(__name__)


class LockTimeout(RuntimeError):
    """The lock could not be taken in time."""


class CacheLock:
    """A named lock with a time to live; ``with CacheLock("x", wait=60):`` waits for it."""

    def __init__(self, name: str, ttl: float | None = None, wait: float = 0.0) -> None:
        self.key = f"crosssell:lock:{name}"
        self.ttl = float(ttl if ttl is not None else settings.LOCK_TTL)
        self.wait = wait
        self.token = uuid.uuid4().hex

    @property
    def _cache(self):  # type: ignore[no-untyped-def]
        return caches[settings.CACHE_ALIAS]

    def acquire(self) -> bool:
        deadline = time.monotonic() + self.wait
        while True:
            if self._cache.add(self.key, self.token, timeout=self.ttl):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def refresh(self) -> None:
        """Extend the lock while holding it (called from progress reports)."""
        if self._cache.get(self.key) == self.token:
            self._cache.touch(self.key, timeout=self.ttl)

    def held(self) -> bool:
        return bool(self._cache.get(self.key) == self.token)

    def release(self) -> None:
        if self._cache.get(self.key) == self.token:
            self._cache.delete(self.key)

    @classmethod
    def resume(cls, name: str, token: str) -> CacheLock:
        """The lock taken by another task of the same job (a chord's callback releases it)."""
        lock = cls(name)
        lock.token = token
        return lock

    def is_free(self) -> bool:
        return self._cache.get(self.key) is None

    def __enter__(self) -> CacheLock:
        if not self.acquire():
            raise LockTimeout(f"{self.key} is held by another process")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
