"""``crosssell.services.cache``: values cached per generation, a bump that starts a new one (on
commit only), the generation remembered in the process for ``LOCAL_SECONDS``, and every call
surviving a cache that refuses connections.

The shared-cache tests run on the real Redis of ``REDIS_URL`` (skipped without it); the
per-process cache (``LocMemCache``) keeps the generation in the database instead. A Redis that
stops under page views and checkouts is ``test_outage.py``'s subject; here only the service's
own contract is tested.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.db import transaction
from django.test import override_settings

from crosssell.models import CacheGeneration
from crosssell.services import cache as cs_cache

pytestmark = pytest.mark.django_db
REDIS = "django.core.cache.backends.redis.RedisCache"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"


class Counter:
    """A ``compute`` callable that returns how many times it was called."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def entry_key(key: str) -> str:
    """The cache key ``get_or_set`` stores ``key`` under in the current generation."""
    return f"crosssell:{cs_cache.version()}:{hashlib.sha1(key.encode()).hexdigest()}"


@pytest.fixture
def redis_cache() -> Iterator[Any]:
    """The crosssell cache is the Redis of ``REDIS_URL`` (shared by every process)."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs Redis (REDIS_URL)")
    config = {
        "BACKEND": REDIS,
        "LOCATION": url,
        "KEY_PREFIX": "cachetest",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 5},
    }
    with override_settings(CACHES={**django_settings.CACHES, "default": config}):
        cs_cache.forget_local()
        cache = caches["default"]
        cache.clear()
        yield cache
        cache.clear()
    cs_cache.forget_local()


@pytest.fixture
def locmem_cache() -> Iterator[Any]:
    """The crosssell cache is this process's memory (the embedded default)."""
    with override_settings(CACHES={"default": {"BACKEND": LOCMEM}}):
        cs_cache.forget_local()
        yield caches["default"]
    cs_cache.forget_local()


def redis_client(cache: Any) -> Any:
    """The raw redis-py client behind Django's ``RedisCache``."""
    return cache._cache.get_client(write=True)


# --- get_or_set and the generation, on Redis -----------------------------------------------------


def test_get_or_set_computes_once_per_generation(redis_cache: Any) -> None:
    compute = Counter()
    assert cs_cache.get_or_set("fbt:1:4", compute) == 1
    assert cs_cache.get_or_set("fbt:1:4", compute) == 1
    assert compute.calls == 1
    assert redis_cache.get(entry_key("fbt:1:4")) == 1  # really stored in Redis
    assert cs_cache.get_or_set("fbt:2:4", compute) == 2  # another key, another value


def test_a_cached_none_or_empty_value_is_a_hit(redis_cache: Any) -> None:
    calls: list[int] = []

    def nothing() -> None:
        calls.append(1)

    assert cs_cache.get_or_set("empty", nothing) is None
    assert cs_cache.get_or_set("empty", nothing) is None
    assert cs_cache.get_or_set("list", lambda: []) == []
    assert cs_cache.get_or_set("list", lambda: [1]) == []
    assert len(calls) == 1


def test_a_bump_starts_a_new_generation_and_the_old_values_are_not_served(
    redis_cache: Any,
) -> None:
    compute = Counter()
    before = cs_cache.version()
    assert cs_cache.get_or_set("fbt:1:4", compute) == 1
    old_entry = entry_key("fbt:1:4")
    cs_cache.bump()
    after = cs_cache.version()
    assert after and after != before
    assert cs_cache.get_or_set("fbt:1:4", compute) == 2  # recomputed in the new generation
    assert cs_cache.get_or_set("fbt:1:4", compute) == 2
    assert redis_cache.get(old_entry) == 1  # left to expire, never swept nor served
    assert len({before, after, *(_bumped() for _ in range(3))}) == 5  # each bump is new


def _bumped() -> str:
    cs_cache.bump()
    return cs_cache.version()


def test_the_generation_lives_in_redis_without_expiry_and_entries_expire(
    redis_cache: Any, settings: Any
) -> None:
    settings.CROSSSELL_CACHE_TIMEOUT = 321
    cs_cache.bump()
    client = redis_client(redis_cache)
    gen_key = redis_cache.make_key(cs_cache.VERSION_KEY)
    assert client.get(gen_key) is not None
    assert client.ttl(gen_key) == -1  # never expires: an expired generation would resurrect
    assert redis_cache.get(cs_cache.VERSION_KEY) == cs_cache.version()
    cs_cache.get_or_set("fbt:1:4", lambda: [1, 2, 3])
    assert 300 < client.ttl(redis_cache.make_key(entry_key("fbt:1:4"))) <= 321
    assert not CacheGeneration.objects.exists()  # a shared cache needs no database row


def test_a_missing_generation_is_created_once_and_agreed_on(redis_cache: Any) -> None:
    redis_cache.delete(cs_cache.VERSION_KEY)
    cs_cache.forget_local()
    first = cs_cache.version()
    assert first and redis_cache.get(cs_cache.VERSION_KEY) == first
    cs_cache.forget_local()  # another process starting afresh reads the same one
    assert cs_cache.version() == first


def test_the_process_remembers_the_generation_for_local_seconds(redis_cache: Any) -> None:
    compute = Counter()
    mine = cs_cache.version()
    cs_cache.get_or_set("fbt:1:4", compute)
    # Another process bumps: it writes a new generation to Redis.
    redis_cache.set(cs_cache.VERSION_KEY, "elsewhere01", None)
    assert cs_cache.version() == mine  # remembered: no round trip within LOCAL_SECONDS
    assert cs_cache.get_or_set("fbt:1:4", compute) == 1
    time.sleep(cs_cache.LOCAL_SECONDS + 0.1)
    assert cs_cache.version() == "elsewhere01"  # seen once the memory is older than that
    assert cs_cache.get_or_set("fbt:1:4", compute) == 2


def test_a_bump_here_is_seen_here_at_once(redis_cache: Any) -> None:
    before = cs_cache.version()
    cs_cache.bump()
    assert cs_cache.version() != before  # no LOCAL_SECONDS wait for this process's own bump


def test_local_values_are_kept_in_the_process_for_their_generation(redis_cache: Any) -> None:
    compute = Counter()
    assert cs_cache.get_or_set("hot", compute, local=True) == 1
    redis_cache.delete(entry_key("hot"))  # gone from Redis: only the process has it now
    assert cs_cache.get_or_set("hot", compute, local=True) == 1
    assert compute.calls == 1
    assert cs_cache.get_or_set("hot", compute) == 2  # without local=True, Redis is asked
    cs_cache.bump()
    assert cs_cache.get_or_set("hot", compute, local=True) == 3  # a new generation: recomputed


def test_local_values_are_dropped_when_another_process_bumps(redis_cache: Any) -> None:
    compute = Counter()
    assert cs_cache.get_or_set("hot", compute, local=True) == 1
    redis_cache.set(cs_cache.VERSION_KEY, "elsewhere02", None)
    time.sleep(cs_cache.LOCAL_SECONDS + 0.1)
    assert cs_cache.get_or_set("hot", compute, local=True) == 2


def test_local_values_are_bounded_oldest_out_first(
    redis_cache: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cs_cache, "LOCAL_VALUES", 3)
    for i in range(5):
        cs_cache.get_or_set(f"k{i}", lambda: "computed", local=True)
    assert list(cs_cache._values) == ["k2", "k3", "k4"]
    # An evicted key is still in Redis: served from there, not recomputed.
    assert cs_cache.get_or_set("k0", lambda: "recomputed", local=True) == "computed"


def test_the_cache_alias_setting_chooses_the_cache(redis_cache: Any, settings: Any) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "recs": {"BACKEND": LOCMEM, "LOCATION": "recs"},
    }
    settings.CROSSSELL_CACHE_ALIAS = "recs"
    cs_cache.forget_local()
    assert cs_cache.process_local()
    cs_cache.get_or_set("fbt:1:4", lambda: "in recs")
    assert caches["recs"].get(entry_key("fbt:1:4")) == "in recs"
    assert redis_cache.get(cs_cache.VERSION_KEY) is None  # the default cache is untouched
    assert CacheGeneration.objects.filter(name="recs").exists()


# --- the per-process memory cache: the generation in the database --------------------------------


def test_a_memory_cache_keeps_the_generation_in_the_database(locmem_cache: Any) -> None:
    assert cs_cache.process_local()
    first = cs_cache.version()
    assert CacheGeneration.objects.get(name="default").value == first
    cs_cache.bump()
    second = cs_cache.version()
    assert second != first
    assert CacheGeneration.objects.get(name="default").value == second
    locmem_cache.clear()  # another process's memory never had it: the row is what counts
    cs_cache.forget_local()
    assert cs_cache.version() == second


def test_another_processs_bump_reaches_a_memory_cache_through_the_database(
    locmem_cache: Any,
) -> None:
    compute = Counter()
    cs_cache.get_or_set("fbt:1:4", compute)
    # A command in another process (a rebuild, an erasure) bumps: only the row changes here.
    CacheGeneration.objects.filter(name="default").update(value="command0001")
    assert cs_cache.get_or_set("fbt:1:4", compute) == 1  # within LOCAL_SECONDS
    time.sleep(cs_cache.LOCAL_SECONDS + 0.1)
    assert cs_cache.version() == "command0001"
    assert cs_cache.get_or_set("fbt:1:4", compute) == 2


# --- a cache that refuses connections ------------------------------------------------------------


def test_every_call_survives_a_cache_that_refuses_connections(
    unreachable_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    down = {
        "BACKEND": REDIS,
        "LOCATION": f"redis://127.0.0.1:{unreachable_port}/0",
        "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
    }
    with override_settings(CACHES={**django_settings.CACHES, "default": down}):
        cs_cache.forget_local()
        compute = Counter()
        assert cs_cache.version() == ""  # no generation: nothing is cached
        assert cs_cache.get_or_set("fbt:1:4", compute) == 1
        assert cs_cache.get_or_set("fbt:1:4", compute, local=True) == 2  # computed each time
        assert cs_cache.get_or_set("fbt:1:4", compute, local=True) == 3
        assert cs_cache._values == {}  # nothing kept for a generation that is unknown
        cs_cache.bump()  # logged, not raised
    assert "could not bump the version" in caplog.text
    cs_cache.forget_local()


# --- the bump on commit ---------------------------------------------------------------------------


@pytest.fixture(params=["redis", "locmem"])
def generation(request: pytest.FixtureRequest) -> Any:
    """Reads the generation as every process sees it (not this process's memory of it): in
    Redis, or in the database row of a per-process memory cache."""
    if request.param == "redis":
        cache = request.getfixturevalue("redis_cache")

        def read() -> Any:
            return cache.get(cs_cache.VERSION_KEY)

    else:
        request.getfixturevalue("locmem_cache")

        def read() -> Any:
            return CacheGeneration.objects.get(name="default").value

    cs_cache.version()  # make sure one exists
    return read


@pytest.mark.django_db(transaction=True)
def test_bump_on_commit_waits_for_the_commit(generation: Any) -> None:
    before = generation()
    with transaction.atomic():
        cs_cache.bump_on_commit()
        assert generation() == before  # not before the change is visible to readers
        assert cs_cache.version() == before
    assert generation() != before
    assert cs_cache.version() == generation()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_does_not_bump(generation: Any) -> None:
    before = generation()
    with pytest.raises(RuntimeError), transaction.atomic():
        cs_cache.bump_on_commit()
        raise RuntimeError("rolled back")
    assert generation() == before


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_does_not_bump_when_the_outer_transaction_commits(
    generation: Any,
) -> None:
    before = generation()
    with transaction.atomic(), pytest.raises(RuntimeError), transaction.atomic():
        cs_cache.bump_on_commit()
        raise RuntimeError("the inner change is undone")
    assert generation() == before
    with transaction.atomic(), transaction.atomic():
        cs_cache.bump_on_commit()
    assert generation() != before


@pytest.mark.django_db(transaction=True)
def test_bump_on_commit_outside_a_transaction_bumps_at_once(generation: Any) -> None:
    before = generation()
    cs_cache.bump_on_commit()
    assert generation() != before


@pytest.mark.django_db(transaction=True)
def test_several_bumps_in_one_transaction_all_happen_after_it(generation: Any) -> None:
    before = generation()
    with transaction.atomic():
        for _ in range(3):
            cs_cache.bump_on_commit()
        assert generation() == before
    assert generation() != before
