"""First-party tracking: impressions, clicks, add-to-carts and attributed purchases.

A request never writes an event to the database: events are pushed to a Redis list (a web
process gathers the widgets' impressions into one push per batch, see :class:`_Outbox`) and a
task (:func:`flush`) writes them in bulk. The flush first moves a batch to a processing list (one
atomic script), writes it with ``ignore_conflicts`` on the events' UUIDs, then drops the
processing list, so a flush that is late, fails, or whose worker is killed loses nothing and
duplicates nothing. Without Redis (or when it is down) events are written directly.

What the events may count for (see TESTING.md, "Attacks refused"): an impression's token is
served to one visitor (:mod:`crosssell.services.impression_tokens`) and counts for nobody else; a
click or an add-to-cart counts once per impression (its id is derived from the impression's, so
replays collapse on the primary key); a purchase is credited to the buyer's own variant only.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crosssell.conf import settings
from crosssell.models import Event, Experiment, Impression, Variant
from crosssell.services import cache as cs_cache
from crosssell.services.impression_tokens import (  # noqa: F401  (the module's former API)
    COMPACT,
    SIGNER_SALT,
    compact_token,
    read_token,
    sign,
    timestamp_sign,
    token_products,
    visitor_tag,
)

logger = logging.getLogger(__name__)
QUEUE = "crosssell:events"
PROCESSING = "crosssell:events:processing"
SESSION_VISITOR = "crosssell_visitor"
SESSION_TOUCHES = "crosssell_touches"
# Move up to ARGV[1] events from the queue to the processing list, atomically.
MOVE_BATCH = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('RPUSH', KEYS[2], unpack(items))
  redis.call('LTRIM', KEYS[1], #items, -1)
end
return #items
"""


# -- visitors and variants -------------------------------------------------------------------

#: The cookie that keeps a visitor's random id (set by the tracking middleware): no session
#: row is written for a visitor who only looks.
COOKIE = "crosssell_visitor"


def valid_visitor(value: Any) -> bool:
    """A visitor id as this module makes them: 32 hexadecimal digits (or one a test chose)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and value.isascii()
        and (value.replace("-", "").replace("_", "").isalnum())
    )


def visitor_id(holder: Any) -> str:
    """A stable, random visitor id (never the user's identity).

    ``holder`` is a request (the id the middleware read from, or gave to, the visitor's cookie;
    without the middleware, the session's) or a session.
    """
    value = getattr(holder, "crosssell_visitor", None)
    if value:
        holder.crosssell_visitor_used = True  # the middleware sets the cookie
        return str(value)
    session = getattr(holder, "session", holder)
    value = session.get(SESSION_VISITOR)
    if not value:
        value = secrets.token_hex(16)
        session[SESSION_VISITOR] = value
    return str(value)


def _session(holder: Any) -> Any:
    """The session of a request, or ``holder`` itself when it is one."""
    return getattr(holder, "session", holder)


class NamedVisitor:
    """A request acting as the visitor its caller names (a storefront whose calls carry no
    cookie), for :func:`visitor_id` and :func:`record_touch`."""

    def __init__(self, request: Any, visitor: str) -> None:
        self.session = getattr(request, "session", {})
        self.crosssell_visitor = visitor


def added_to_cart(request: Any, product_ids: Iterable[int]) -> None:
    """Tell tracking which products a cart-add view really added (call it with ``()`` first
    thing, so a refused form records nothing). A view that never calls it has every widget
    product it was posted counted as added, once it answers below 400."""
    added: set[int] = getattr(request, "crosssell_added", None) or set()
    added.update(int(p) for p in product_ids)
    request.crosssell_added = added


def known_visitor(request: Any) -> str | None:
    """The visitor a request already is: its cookie's, else its session's; ``None`` for a
    caller seen for the first time."""
    cookie = getattr(request, "COOKIES", {}).get(COOKIE)
    if valid_visitor(cookie):
        return str(cookie)
    session = getattr(request, "session", None)
    value = session.get(SESSION_VISITOR) if session is not None else None
    return str(value) if value else None


def acting_as(request: Any, named: str | None) -> Any | None:
    """The holder (see :func:`visitor_id`) of the visitor ``request`` acts as.

    The request itself, or, when its caller names a visitor (the API's ``visitor``), that
    visitor; ``None`` when the name differs from the visitor the request's cookie (or session)
    already is: a caller cannot act as another visitor than its own.
    """
    if named is None:
        return request
    known = known_visitor(request)
    if known is None:
        return NamedVisitor(request, named)
    return request if known == named else None


def current_visitor(holder: Any) -> str | None:
    """The visitor id ``holder`` carries, without making one (``None``: none yet)."""
    value = getattr(holder, "crosssell_visitor", None) or _session(holder).get(SESSION_VISITOR)
    return str(value) if value else None


def variant_for(placement: str, holder: Any) -> Variant | None:
    """The variant of the placement's running experiment that this visitor sees, if any."""
    running = active_experiment(placement)
    return assign(running[0], running[1], visitor_id(holder)) if running else None


def active_experiment(placement: str) -> tuple[Experiment, list[Variant]] | None:
    """The running experiment of a placement (or of every placement), with its variants."""

    def compute() -> tuple[Experiment, list[Variant]] | None:
        exp = (
            Experiment.objects.filter(is_active=True, placement__in=[placement, ""])
            .order_by("-placement")
            .first()
        )
        if exp is None:
            return None
        variants = list(exp.variants.order_by("pk"))
        return (exp, variants) if variants else None

    return cs_cache.get_or_set(f"experiment:{placement}", compute, local=True)


def running_experiment() -> tuple[Experiment, list[Variant]] | None:
    """The experiment whose variants an order counts for (the oldest running one)."""

    def compute() -> tuple[Experiment, list[Variant]] | None:
        exp = Experiment.objects.filter(is_active=True).order_by("started_at", "pk").first()
        variants = list(exp.variants.order_by("pk")) if exp else []
        return (exp, variants) if exp and variants else None

    return cs_cache.get_or_set("experiment:running", compute, local=True)


def assign(experiment: Experiment, variants: Sequence[Variant], visitor: str) -> Variant:
    """The visitor's variant: a hash of the experiment and the visitor id, so it never changes
    while the variants and their weights stay the same."""
    digest = hashlib.sha256(f"{experiment.pk}:{experiment.name}:{visitor}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in variants)
    for variant in variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    return variants[-1]


# -- the buffer --------------------------------------------------------------------------------


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


_pending: ContextVar[_Held | None] = ContextVar("crosssell_pending_events", default=None)


@contextmanager
def collecting() -> Iterator[None]:
    """Hold the events pushed inside the block and add them to the process's outbox at its end
    (the middleware wraps each request in it): impressions wait there for a batch, a request
    with a click, an add-to-cart or a purchase sends the outbox at once."""
    token = _pending.set(_Held())
    try:
        yield
    finally:
        held = _pending.get()
        _pending.reset(token)
        if held is not None and held.payload:
            _queue(held.payload, now=held.urgent)


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


@transaction.atomic
def write(events: Sequence[dict[str, Any]]) -> int:
    """Bulk-insert events; an event already written (same id) is skipped."""
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


# -- what the widgets and the shop call -----------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """What a widget needs to carry its impression: the signed token of its links and forms."""

    impression: str
    token: str
    variant: Variant | None


def impression_event(
    placement: str,
    visitor: str,
    sources: Sequence[int],
    products: Sequence[int],
    strategies: Sequence[str],
    variant: int | None,
    impression: str | None = None,
) -> dict[str, Any]:
    """The queued form of one impression."""
    return {
        "type": "impression",
        "id": impression or str(uuid.uuid4()),
        "at": time.time(),
        "placement": placement,
        "visitor": visitor,
        "variant": variant,
        "sources": [int(s) for s in sources],
        "products": [int(p) for p in products],
        "strategies": list(strategies),
    }


def record_impression(
    placement: str,
    visitor: str,
    sources: Sequence[int],
    products: Sequence[int],
    strategies: Sequence[str],
    variant: Variant | None = None,
) -> Rendered:
    """Queue one impression; returns its id and the token the widget's links carry.

    The same as ``push([impression_event(...)])`` and :func:`sign`, but what a list shows is
    encoded once and reused (a cached widget shows the same list to many visitors).
    """
    shown = _shown(placement, tuple(sources), tuple(products), tuple(strategies))
    impression, uid = new_uuid4()
    variant_id = variant.pk if variant else None
    _push_encoded(
        [
            f'{{"type":"impression","id":"{impression}","at":{time.time()!r},'
            f'"visitor":{_encode(visitor)},"variant":{_encode(variant_id)},{shown.json}}}'
        ],
        urgent=False,
    )
    return Rendered(
        impression, compact_token(uid, variant_id, shown.ids, visitor_tag(visitor)), variant
    )


@dataclass(frozen=True)
class _Shown:
    json: str  # the impression's placement, sources, products and strategies as JSON members
    ids: str  # the products as a compact token names them


@functools.lru_cache(maxsize=4096)
def _shown(
    placement: str, sources: tuple[int, ...], products: tuple[int, ...], strategies: tuple[str, ...]
) -> _Shown:
    members = {
        "placement": placement,
        "sources": [int(s) for s in sources],
        "products": [int(p) for p in products],
        "strategies": list(strategies),
    }
    return _Shown(_encode(members)[1:-1], ".".join(str(int(p)) for p in products))


def new_uuid4() -> tuple[str, bytes]:
    """A random (version 4) UUID as text and as bytes, without ``uuid.UUID``'s conversions."""
    raw = bytearray(secrets.token_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", bytes(raw)


#: The namespace of the ids of clicks and add-to-carts (see :func:`touch_id`).
TOUCH_NAMESPACE = uuid.UUID("a18e4372-0c9e-40e3-809d-eb54a5272301")


def touch_id(impression: str, event_type: str) -> str:
    """The id of an impression's click (or add-to-cart): the same for every replay of it, in
    any session or request, so the database keeps one per impression and kind."""
    return str(uuid.uuid5(TOUCH_NAMESPACE, f"{impression}:{event_type}"))


def record_touch(holder: Any, token: str, event_type: str, product_id: int | None = None) -> bool:
    """A click or an add-to-cart from a widget: queue the event and remember it in the session
    so checkout can attribute the order line.

    ``holder`` is the request (or its session); the token must have been served to its visitor
    and ``product_id`` must be one of the products the impression showed. Returns ``False``
    otherwise (nothing is recorded). An impression counts one click and one add-to-cart, however
    often its token comes back (:func:`touch_id`).
    """
    visitor = current_visitor(holder)
    data = read_token(token, visitor) if visitor and product_id is not None else None
    if data is None or product_id is None:
        return False
    product_id = int(product_id)
    if product_id not in token_products(data):
        return False
    session = _session(holder)
    touches = dict(session.get(SESSION_TOUCHES, {}))
    visitor = visitor_id(holder)  # the same id; the middleware now keeps its cookie
    push(
        [
            {
                "type": event_type,
                "id": touch_id(data["i"], event_type),
                "at": time.time(),
                "impression": data["i"],
                "variant": data.get("v"),
                "visitor": visitor,
                "product": product_id,
            }
        ]
    )
    touches[str(product_id)] = [data["i"], data.get("v"), timezone.now().isoformat()]
    session[SESSION_TOUCHES] = touches
    return True


def own_variants(visitor: str, variant_ids: Iterable[int]) -> set[int]:
    """Those of ``variant_ids`` that are ``visitor``'s own: the variant :func:`assign` gives the
    visitor in its experiment, while the experiment runs (one query)."""
    wanted = {v for v in variant_ids if isinstance(v, int)}
    if not wanted:
        return set()
    experiments: dict[int, list[Variant]] = {}
    running = Experiment.objects.filter(is_active=True, variants__in=wanted)
    for v in Variant.objects.filter(experiment__in=running).select_related("experiment"):
        experiments.setdefault(v.experiment_id, []).append(v)
    own = {assign(vs[0].experiment, sorted(vs, key=lambda v: v.pk), visitor).pk
           for vs in experiments.values()}  # fmt: skip
    return own & wanted


def attribute_order(holder: Any, order_ref: str, lines: Sequence[tuple[int, int, Decimal]]) -> int:
    """At checkout (``holder``: the request, or its session): one purchase event per line of
    ``(product, quantity, unit price)``, tied to the impression the product was clicked or added
    from within the attribution window, and to the visitor's variant of the running experiment
    (so holdouts count their orders too). Returns how many lines were attributed to an
    impression.

    A purchase is credited only to the buyer's own variant: a touch whose variant is not the one
    the visitor is assigned (a list served under another experiment's arm, a variant the
    merchant has since reweighted) attributes nothing, and the line counts for the visitor's
    own variant of the running experiment.
    """
    visitor = visitor_id(holder)
    session = _session(holder)
    touches: dict[str, list[Any]] = dict(session.get(SESSION_TOUCHES, {}))
    window = timedelta(seconds=settings.ATTRIBUTION_WINDOW)
    now = timezone.now()
    running = running_experiment()
    variant = assign(running[0], running[1], visitor).pk if running else None
    touched = [touches.get(str(product)) for product, _, _ in lines]
    own = own_variants(visitor, (t[1] for t in touched if t))
    events = []
    attributed = 0
    for product, quantity, price in lines:
        touch = touches.pop(str(product), None)
        impression = touch_variant = None
        if touch and (touch[1] is None or touch[1] in own):
            at = parse_datetime(touch[2])
            if at is not None and now - at <= window:
                impression, touch_variant = touch[0], touch[1]
                attributed += 1
        events.append(
            {
                "type": Event.Type.PURCHASE,
                "id": str(uuid.uuid4()),
                "at": now.timestamp(),
                "impression": impression,
                "variant": touch_variant or variant,
                "visitor": visitor,
                "product": int(product),
                "order": order_ref,
                "quantity": int(quantity),
                "revenue": str(Decimal(price) * quantity),
            }
        )
    push(events)
    session[SESSION_TOUCHES] = touches
    return attributed
