"""A lock in the cache, so that two rebuilds never run at once on any machine.

On Redis (Django's ``RedisCache`` or django-redis) the lock is one key taken with ``SET NX PX``;
it is extended (``PEXPIRE``) and released (``DEL``) by Lua scripts that first compare the key's
value with the holder's token, so only the owner extends or deletes it, atomically. On another
cache the same steps run as ``add`` / ``get`` + ``touch`` / ``get`` + ``delete`` under a
process-wide mutex: exact for the local-memory cache (one process), best effort across
processes (a check and its delete are then two round trips).

The lock expires by itself when its holder dies (a killed worker). While a holder works, a
heartbeat thread extends it every third of its time to live, so a long fit keeps it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.cache import caches

from crosssell.conf import settings

logger = logging.getLogger(__name__)
#: The name of the lock every build takes (a rebuild, a variant's build, an erasure).
REBUILD_LOCK = "rebuild"

# KEYS[1]: the lock; ARGV[1]: the holder's token; ARGV[2]: milliseconds to live.
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
# Makes check-then-act atomic on a cache without scripts, within this process.
_local_mutex = threading.Lock()


class LockTimeout(RuntimeError):
    """The lock could not be taken in time."""


class CacheLock:
    """A named lock with a time to live; ``with CacheLock("x", wait=60):`` waits for it, then
    keeps it alive with a heartbeat until the block ends."""

    def __init__(self, name: str, ttl: float | None = None, wait: float = 0.0) -> None:
        self.name = name
        self.key = f"crosssell:lock:{name}"
        self.ttl = float(ttl if ttl is not None else settings.LOCK_TTL)
        self.wait = wait
        self.token = uuid.uuid4().hex
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()
        self._conn: tuple[Any, str] | None = None

    @classmethod
    def resume(cls, name: str, token: str) -> CacheLock:
        """The lock taken by another task of the same job (a chord's callback releases it)."""
        lock = cls(name)
        lock.token = token
        return lock

    # -- the cache ------------------------------------------------------------------------------

    @property
    def _cache(self) -> Any:
        return caches[settings.CACHE_ALIAS]

    def _redis(self) -> tuple[Any, str] | None:
        """The raw Redis client and full key, when the cache is Redis (else ``None``).

        Looked up once per lock: the client is thread-safe, so the heartbeat thread shares it
        rather than open a cache (and a connection pool) of its own.
        """
        if self._conn is None:
            cache = self._cache
            key = cache.make_and_validate_key(self.key)
            client = None
            backend = getattr(cache, "_cache", None)  # Django's own RedisCache
            if backend is not None and hasattr(backend, "get_client"):
                client = backend.get_client(key, write=True)
            backend = getattr(cache, "client", None)  # django-redis
            if client is None and backend is not None and hasattr(backend, "get_client"):
                client = backend.get_client(write=True)
            self._conn = (client, key)
        return None if self._conn[0] is None else self._conn

    @property
    def _ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    # -- the lock -------------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Take the lock, waiting up to ``wait`` seconds; ``False`` if it stayed taken."""
        deadline = time.monotonic() + self.wait
        while True:
            if self._try_acquire():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def take(self) -> CacheLock:
        """:meth:`acquire` or raise :class:`LockTimeout`."""
        if not self.acquire():
            raise LockTimeout(f"another holder has the lock {self.name!r}")
        return self

    def _try_acquire(self) -> bool:
        redis = self._redis()
        if redis is not None:
            client, key = redis
            return bool(client.set(key, self.token, nx=True, px=self._ms))
        return bool(self._cache.add(self.key, self.token, timeout=self.ttl))

    def refresh(self) -> bool:
        """Extend the lock to its full time to live if it is still ours; returns whether it is."""
        redis = self._redis()
        if redis is not None:
            client, key = redis
            return bool(client.eval(_EXTEND, 1, key, self.token, self._ms))
        with _local_mutex:
            if self._cache.get(self.key) != self.token:
                return False
            return bool(self._cache.touch(self.key, timeout=self.ttl))

    def release(self) -> bool:
        """Stop the heartbeat and delete the lock if it is still ours (compare-and-delete);
        returns whether it was."""
        self.stop_heartbeat()
        redis = self._redis()
        if redis is not None:
            client, key = redis
            return bool(client.eval(_RELEASE, 1, key, self.token))
        with _local_mutex:
            if self._cache.get(self.key) != self.token:
                return False
            return bool(self._cache.delete(self.key))

    def owner(self) -> str | None:
        """The token of whoever holds the lock now (``None`` when it is free)."""
        redis = self._redis()
        if redis is None:
            value = self._cache.get(self.key)
            return None if value is None else str(value)
        client, key = redis
        raw = client.get(key)
        return raw.decode() if isinstance(raw, bytes) else raw

    def held(self) -> bool:
        return self.owner() == self.token

    def is_free(self) -> bool:
        return self.owner() is None

    # -- the heartbeat --------------------------------------------------------------------------

    def start_heartbeat(self) -> bool:
        """Extend the lock every ``ttl / 3`` seconds in a daemon thread until it is released (or
        :meth:`stop_heartbeat`); ``False`` if one already runs."""
        if self._beat is not None and self._beat.is_alive():
            return False
        self._redis()  # looked up here: a cache made in the thread would open its own pool
        self._stop = threading.Event()
        self._beat = threading.Thread(
            target=self._heartbeat, args=(self._stop,), name=f"lock-{self.name}", daemon=True
        )
        self._beat.start()
        return True

    def stop_heartbeat(self) -> None:
        self._stop.set()
        beat, self._beat = self._beat, None
        if beat is not None and beat is not threading.current_thread():
            beat.join()

    @contextmanager
    def keep_alive(self) -> Iterator[CacheLock]:
        """Run the heartbeat for the block (a no-op when one already runs)."""
        started = self.start_heartbeat()
        try:
            yield self
        finally:
            if started:
                self.stop_heartbeat()

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.ttl / 3):
            try:
                if not self.refresh():
                    # Expired or taken over (the cache lost it): another build may start now.
                    logger.error("crosssell lock %r was lost while held", self.name)
                    return
            except Exception:  # a cache outage: keep trying while the TTL lasts
                logger.warning("crosssell lock %r: refresh failed", self.name, exc_info=True)

    def __enter__(self) -> CacheLock:
        self.take()
        self.start_heartbeat()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def rebuild_lock(wait: float | None = None) -> CacheLock:
    """The rebuild lock (one build of any kind at a time): ``with rebuild_lock(wait) as lock:``
    waits up to ``wait`` seconds (default ``CROSSSELL_LOCK_WAIT``), raises
    :class:`LockTimeout` when it stays taken, and keeps it alive until the block ends."""
    return CacheLock(REBUILD_LOCK, wait=settings.LOCK_WAIT if wait is None else wait)
