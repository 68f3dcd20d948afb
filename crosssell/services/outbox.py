"""The event outbox: holding, batching, pushing and flushing tracking events.

A request never writes an event to the database: events are pushed to a Redis list (a web
process gathers the widgets' impressions into one push per batch, see :class:`_Outbox`) and a
task (:func:`flush`) writes them in bulk. The flush first moves a batch to a processing list (one
atomic script), writes it with ``ignore_conflicts`` on the events' UUIDs, then drops the
processing list, so a flush that is late, fails, or whose worker is killed loses nothing and
duplicates nothing. Without Redis (or when it is down) events are written directly.

The process-wide state (the outbox, its locks, its ``atexit`` and fork hooks) lives here only;
:mod:`crosssell.services.tracking` re-exports the names its callers use.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crosssell.conf import settings
from crosssell.models import Event, Impression
from crosssell.services import ratelimit

logger = logging.getLogger("crosssell.services.tracking")  # the logger's name before the split
QUEUE = "crosssell:events"
PROCESSING = "crosssell:events:processing"
# Move up to ARGV[1] events from the queue to the processing list, atomically.
MOVE_BATCH = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('RPUSH', KEYS[2], unpack(items))
  redis.call('LTRIM', KEYS[1], #items, -1)
end
return #items
"""


def _redis() -> Any | None:
    """The raw Redis client behind the cache, when the cache is Redis.

    Kept on the cache's client (one per thread), since making one builds its tables anew: that
    took longer than the push itself.
    """
    client = _cache_client()
    if client is None:
        return None
    held = getattr(client, "_crosssell_writer", None)
    if held is None:
        held = client._crosssell_writer = client.get_client(write=True)
    return held


def _cache_client() -> Any | None:
    cache = caches[settings.CACHE_ALIAS]
    client = getattr(cache, "_cache", None)
    return client if client is not None and hasattr(client, "get_client") else None


class _Outbox:
    """The events a web process holds before one push sends them to Redis.

    A request's impressions are added here, with no I/O, and sent together with the others
    once :data:`settings.TRACKING_BATCH <crosssell.conf>` events are held or the oldest is
    ``TRACKING_BATCH_SECONDS`` old (checked as each request ends), at once when the request
    also had a click, an add-to-cart or a purchase, and when the process exits (``atexit``:
    a graceful restart of a web worker loses nothing). A push waits for Redis's answer; when
    Redis refuses it or the answer is lost, the events are written to the database instead
    (their ids make a later second write harmless). A process killed without warning loses
    what it held, at most one batch.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Empty, with fresh locks (also in a forked child)."""
        self.lock = threading.Lock()  # guards ``held`` (threaded servers)
        self.sending = threading.Lock()  # one push at a time, in order
        self.held: list[str] = []
        self.since = 0.0

    def add(self, payload: list[str], *, now: bool) -> None:
        with self.lock:
            if not self.held:
                self.since = time.monotonic()
            self.held += payload
            due = (
                now
                or len(self.held) >= settings.TRACKING_BATCH
                or time.monotonic() - self.since >= settings.TRACKING_BATCH_SECONDS
            )
        if due:
            self.send()

    def send(self) -> None:
        """Push everything held now (and wait for the answer)."""
        with self.sending:
            with self.lock:
                payload, self.held = self.held, []
            if payload:
                _push_now(payload)

    def drop(self) -> None:
        with self.lock:
            self.held = []


_outbox = _Outbox()
atexit.register(_outbox.send)
# A forked child (a server that loads the app before forking its workers) starts with an empty
# outbox and fresh locks: what the parent held is the parent's to send.
os.register_at_fork(after_in_child=_outbox.reset)


def _push_now(payload: list[str]) -> None:
    """RPUSH the events to the queue; written to the database when Redis cannot take them."""
    redis = _redis()
    if redis is not None:
        try:
            redis.rpush(QUEUE, *payload)
            return
        except Exception:
            logger.warning("event queue unavailable: writing %d event(s) now", len(payload))
    try:
        write([json.loads(p) for p in payload])
    except Exception:  # the page is served all the same
        logger.exception("%d tracking event(s) lost: no queue, no database", len(payload))


def settle() -> None:
    """Send the events this process holds (see :class:`_Outbox`) to Redis now."""
    _outbox.send()


def drop_held() -> None:
    """Forget the events this process holds, unsent (for tests that start afresh)."""
    _outbox.drop()


#: Events as queued: compact JSON (one encoder, made once).
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


@dataclass
class _Held:
    """The events of one request, queued together when it ends (see :func:`collecting`)."""

    payload: list[str] = field(default_factory=list)
    urgent: bool = False  # more than impressions: sent at once
    #: The client address the storefront's limits count the events against (set by the
    #: tracking middleware; "" for events limited otherwise, or not at all).
    origin: str = ""


_pending: ContextVar[_Held | None] = ContextVar("crosssell_pending_events", default=None)


@contextmanager
def collecting() -> Iterator[_Held]:
    """Hold the events pushed inside the block and add them to the process's outbox at its end
    (the middleware wraps each request in it): impressions wait there for a batch, a request
    with a click, an add-to-cart or a purchase sends the outbox at once.

    The block may set the returned holder's ``origin`` (the client's address): its events are
    then queued tagged with a hash of it, for the storefront's limits (:func:`write`).
    """
    token = _pending.set(_Held())
    try:
        yield _pending.get() or _Held()
    finally:
        held = _pending.get()
        _pending.reset(token)
        if held is not None and held.payload:
            payload = held.payload
            if held.origin:
                tag = _origin_tag(held.origin)
                payload = [tag + p[1:] for p in payload]
            _queue(payload, now=held.urgent)


@functools.lru_cache(maxsize=4096)
def _origin_tag(address: str) -> str:
    """The start of a queued event's JSON naming its origin: a hash of the address (the queue
    keeps no raw address)."""
    return '{"origin":"' + hashlib.sha256(address.encode()).hexdigest()[:24] + '",'


def push(events: Iterable[dict[str, Any]]) -> None:
    """Queue events for :func:`flush`; written directly when there is no Redis to queue in.

    Outside a request (a task, a command) the events reach Redis before this returns.
    """
    events = list(events)
    if not events:
        return
    _push_encoded(
        [_encode(e) for e in events], urgent=any(e["type"] != "impression" for e in events)
    )


def _push_encoded(payload: list[str], *, urgent: bool) -> None:
    held = _pending.get()
    if held is not None:
        held.payload += payload
        held.urgent = held.urgent or urgent
        return
    _queue(payload, now=True)


def _queue(payload: list[str], *, now: bool) -> None:
    if _cache_client() is None:  # no Redis: the database at once
        _push_now(payload)
    else:
        _outbox.add(payload, now=now)


def flush(batch: int = 1000, max_batches: int = 1000) -> int:
    """Write queued events to the database in bulk; returns how many were written."""
    settle()
    redis = _redis()
    if redis is None:
        return 0
    written = 0
    script = redis.register_script(MOVE_BATCH)
    for _ in range(max_batches):
        # A batch a killed flush left behind is written first (idempotent), then a new one.
        if not redis.llen(PROCESSING) and not script(keys=[QUEUE, PROCESSING], args=[batch]):
            break
        items = redis.lrange(PROCESSING, 0, -1)
        written += write([json.loads(i) for i in items])
        redis.delete(PROCESSING)
    return written


def pending() -> int:
    """Events waiting in the queue (and in a flush's processing list)."""
    settle()
    redis = _redis()
    return 0 if redis is None else int(redis.llen(QUEUE) + redis.llen(PROCESSING))


#: The events the storefront's limits count (a purchase is never dropped).
LIMITED_TYPES = frozenset({"impression", Event.Type.CLICK, Event.Type.ADD_TO_CART})


def within_limits(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events within the storefront's limits, per client address and per visitor.

    Only events queued with an ``origin`` (the tracking middleware's: widgets' impressions,
    link clicks, form add-to-carts) are counted, in the window of the rate they happened in
    (:func:`crosssell.services.ratelimit.take`, one pipeline per batch), so the page pays
    nothing for the limit. The first events of a window are kept, the rest dropped.
    """
    tagged = [e for e in events if e.get("origin") and e["type"] in LIMITED_TYPES]
    if not tagged:
        return list(events)
    dropped: set[int] = set()
    for scope, member in ((ratelimit.STOREFRONT_ADDRESS, "origin"),
                          (ratelimit.STOREFRONT_VISITOR, "visitor")):  # fmt: skip
        limit = ratelimit.scope_rate(scope, ratelimit.STOREFRONT_DEFAULTS[scope])
        if limit is None:
            continue
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for e in tagged:
            if id(e) not in dropped:
                window = int(_when(e).timestamp() // limit.seconds)
                groups.setdefault((str(e.get(member) or ""), window), []).append(e)
        allowed = ratelimit.take(scope, {g: len(v) for g, v in groups.items()}, limit)
        for group, members in groups.items():
            dropped.update(id(e) for e in members[allowed[group] :])
    if not dropped:
        return list(events)
    logger.info("%d storefront event(s) beyond the rate limits not recorded", len(dropped))
    return [e for e in events if id(e) not in dropped]


@transaction.atomic
def write(events: Sequence[dict[str, Any]]) -> int:
    """Bulk-insert events; an event already written (same id) is skipped. Storefront events
    beyond the limits per address and per visitor are dropped (:func:`within_limits`).
    Returns how many events were kept."""
    events = within_limits(events)
    impressions = [
        Impression(
            id=e["id"],
            created_at=_when(e),
            placement=e["placement"],
            visitor=e["visitor"],
            variant_id=e.get("variant"),
            sources=e.get("sources", []),
            products=e.get("products", []),
            strategies=e.get("strategies", []),
        )
        for e in events
        if e["type"] == "impression"
    ]
    Impression.objects.bulk_create(impressions, ignore_conflicts=True)
    # A click whose impression never reached the database (a forged id) keeps no link; one by
    # another visitor than the impression's is not written (a purchase keeps no link).
    owners = {
        str(pk): visitor
        for pk, visitor in Impression.objects.filter(
            id__in={e["impression"] for e in events if e.get("impression")}
        ).values_list("id", "visitor")
    }
    others = []
    for e in events:
        if e["type"] == "impression":
            continue
        owner = owners.get(str(e.get("impression")))
        if owner not in (None, e["visitor"]) and e["type"] != Event.Type.PURCHASE:
            continue
        others.append(
            Event(
                id=e["id"],
                type=e["type"],
                impression_id=e["impression"] if owner == e["visitor"] else None,
                variant_id=e.get("variant"),
                visitor=e["visitor"],
                product_id=e["product"],
                order_ref=e.get("order", ""),
                quantity=e.get("quantity", 0),
                revenue=Decimal(str(e.get("revenue", "0"))),
                created_at=_when(e),
            )
        )
    Event.objects.bulk_create(others, ignore_conflicts=True)
    return len(events)


def _when(event: dict[str, Any]) -> datetime:
    """When an event happened: ``at`` in seconds since the epoch (or ISO 8601, as queued by
    earlier versions); now when it is missing."""
    value = event.get("at")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    parsed = parse_datetime(value) if isinstance(value, str) and value else None
    return parsed or timezone.now()
