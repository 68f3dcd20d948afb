"""The rebuild lock: one owner, atomic owner-only release, a heartbeat that outlives the TTL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import override_settings

from crosssell.engine.base import Interactions
from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, Recommendation
from crosssell.services.build import rebuild
from crosssell.services.distributed import LockBusy, start_rebuild
from crosssell.services.locks import CacheLock, LockTimeout, rebuild_lock
from crosssell.tasks import launch_rebuild_chord
from crosssell.testing import buy, make_product

REDIS = "django.core.cache.backends.redis.RedisCache"


@pytest.fixture(params=["redis", "locmem"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each lock test on Redis (Lua scripts) and on the local-memory cache (the fallback)."""
    if request.param == "redis":
        if django_settings.CACHES["default"]["BACKEND"] != REDIS:
            pytest.skip("REDIS_URL is not set: the cache is not Redis")
        yield request.param
        return
    caches = {
        **django_settings.CACHES,
        "locks": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    with override_settings(CACHES=caches, CROSSSELL_CACHE_ALIAS="locks"):
        yield request.param


def name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_the_lock_uses_redis_scripts_when_the_cache_is_redis(backend: str) -> None:
    lock = CacheLock(name())
    assert (lock._redis() is not None) == (backend == "redis")


def test_one_holder_at_a_time(backend: str) -> None:
    n = name()
    first, second = CacheLock(n, ttl=5), CacheLock(n, ttl=5, wait=0.3)
    assert first.acquire()
    started = time.monotonic()
    assert not second.acquire()
    assert time.monotonic() - started >= 0.3  # it waited before giving up
    assert first.held() and not second.held()
    assert first.release()
    assert second.acquire() and second.held()
    second.release()
    assert second.is_free()


def test_release_by_a_non_owner_deletes_nothing(backend: str) -> None:
    n = name()
    owner = CacheLock(n, ttl=5)
    assert owner.acquire()
    assert CacheLock.resume(n, "somebody-else").release() is False
    assert owner.held()
    # A holder whose lock expired and was taken by another must not free the new holder's lock.
    late = CacheLock(name(), ttl=0.3)
    assert late.acquire()
    time.sleep(0.6)
    new = CacheLock(late.name, ttl=5)
    assert new.acquire()
    assert late.release() is False
    assert new.held()
    owner.release()
    new.release()


def test_refresh_by_a_non_owner_does_not_extend(backend: str) -> None:
    n = name()
    owner = CacheLock(n, ttl=0.5)
    assert owner.acquire()
    assert CacheLock.resume(n, "somebody-else").refresh() is False
    assert owner.refresh() is True
    time.sleep(0.8)
    assert owner.is_free()  # nobody kept it alive: it expired


def test_the_heartbeat_keeps_the_lock_past_its_ttl_and_stops_on_release(backend: str) -> None:
    n = name()
    with CacheLock(n, ttl=0.6) as lock:
        time.sleep(1.5)  # more than twice the time to live
        assert lock.held()
        beat = lock._beat
        assert beat is not None and beat.is_alive()
    assert lock.is_free()
    beat.join(timeout=2)
    assert not beat.is_alive()


def test_keep_alive_extends_a_lock_taken_without_a_heartbeat(backend: str) -> None:
    lock = CacheLock(name(), ttl=0.6).take()
    with lock.keep_alive():
        time.sleep(1.5)
        assert lock.held()
        with lock.keep_alive():  # nested: the outer heartbeat runs on
            pass
        time.sleep(1.0)
        assert lock.held()
    time.sleep(1.0)
    assert lock.is_free()


def test_a_lock_timeout_is_its_own_type(backend: str) -> None:
    with rebuild_lock(wait=0), pytest.raises(LockTimeout), rebuild_lock(wait=0.2):
        pass  # pragma: no cover (not reached)


@pytest.mark.django_db
@pytest.mark.parametrize("shard_size", [1_000, 1])
def test_a_busy_rebuild_lock_becomes_lock_busy(settings: Any, shard_size: int) -> None:
    """Both ways a task starts a rebuild (here and as a chord) recognise the lock by type."""
    settings.CROSSSELL_SHARD_SIZE = shard_size
    for i in range(3):
        make_product(f"P{i}")
    with rebuild_lock(wait=0), pytest.raises(LockBusy) as caught:
        start_rebuild("test", launch=launch_rebuild_chord)  # the launcher the task passes
    assert isinstance(caught.value, LockTimeout)
    assert not Build.objects.exists()


class SlowFit(CoCount):
    """Co-count whose fit sleeps ``SECONDS`` (the offline metrics' fit too)."""

    SECONDS = 3.0
    fitting = threading.Event()  # a class attribute: the metrics deep-copy the instance

    def fit(self, data: Interactions) -> SlowFit:
        SlowFit.fitting.set()
        time.sleep(self.SECONDS)
        super().fit(data)
        return self


@pytest.mark.django_db(transaction=True)
def test_a_second_rebuild_waits_for_a_fit_longer_than_the_lock_ttl(settings: Any) -> None:
    settings.CROSSSELL_LOCK_TTL = 1  # the fit (3 s, twice: the offline metrics) outlasts it
    p = [make_product(f"P{i}") for i in range(4)]
    for i in range(5):
        buy(f"o{i}", f"c{i}", p[0], p[1])
        buy(f"q{i}", f"d{i}", p[2], p[3])
    SlowFit.fitting.clear()
    done: dict[str, Any] = {}

    def run(key: str, **kwargs: Any) -> None:
        try:
            done[key] = rebuild(**kwargs)
        except BaseException as exc:  # reported by the assertions below
            done[key] = exc
        finally:
            connection.close()

    first = threading.Thread(target=run, args=("first",), kwargs={"strategy": SlowFit()})
    first.start()
    assert SlowFit.fitting.wait(timeout=30)
    second = threading.Thread(
        target=run, args=("second",), kwargs={"strategy": CoCount(), "wait": 60}
    )
    second.start()
    time.sleep(2.5)  # past the lock's TTL, the first still fits
    # the first still runs, the second waits for the lock and has not started a build
    meanwhile = (first.is_alive(), second.is_alive(), Build.objects.count())
    first.join(timeout=60)
    second.join(timeout=60)
    assert meanwhile == (True, True, 1)
    a, b = done["first"], done["second"]
    assert isinstance(a, Build) and isinstance(b, Build), done
    a.refresh_from_db()
    assert a.state == Build.State.READY  # live until the second replaced it, never failed
    assert a.error == ""
    assert a.finished_at is not None and a.finished_at <= b.created_at
    assert a.counts["recommendations"] > 0
    assert Recommendation.objects.filter(build=a).count() == a.counts["recommendations"]
    assert Build.objects.get(state=Build.State.LIVE).pk == b.pk
    assert CacheLock("rebuild").is_free()
