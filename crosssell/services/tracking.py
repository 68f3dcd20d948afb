"""First-party tracking: impressions, clicks, add-to-carts and attributed purchases.

A request never writes an event to the database: events are pushed to a Redis list and a task
(:func:`flush`) writes them in bulk. The flush first moves a batch to a processing list (one
atomic script), writes it with ``ignore_conflicts`` on the events' UUIDs, then drops the
processing list, so a flush that is late, fails, or whose worker is killed loses nothing and
duplicates nothing. Without Redis (or when it is down) events are written directly.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings
from django.core import signing
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from redis.exceptions import ResponseError

from crosssell.conf import settings
from crosssell.models import Event, Experiment, Impression, Variant
from crosssell.services import cache as cs_cache

logger = logging.getLogger(__name__)
QUEUE = "crosssell:events"
PROCESSING = "crosssell:events:processing"
SIGNER_SALT = "crosssell.impression"
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
        value = uuid.uuid4().hex
        session[SESSION_VISITOR] = value
    return str(value)


def _session(holder: Any) -> Any:
    """The session of a request, or ``holder`` itself when it is one."""
    return getattr(holder, "session", holder)


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
    return None if client is None else _writer(client)


def _cache_client() -> Any | None:
    cache = caches[settings.CACHE_ALIAS]
    client = getattr(cache, "_cache", None)
    return client if client is not None and hasattr(client, "get_client") else None


def _writer(client: Any) -> Any:
    held = getattr(client, "_crosssell_writer", None)
    if held is None:
        held = client._crosssell_writer = client.get_client(write=True)
    return held


#: How many pushes a thread sends before it reads Redis's answers to them.
CONFIRM_EVERY = 32


class _Sender:
    """Pushes events on a connection of its own (one per thread and process).

    A request's push does not wait for Redis's answer: the answers are read together every
    :data:`CONFIRM_EVERY` pushes (or by :func:`settle`), long after they arrived, so a request
    costs one write to the socket. Until its answer is read a push stays in memory; when Redis
    refuses it or the connection fails, its events are written to the database instead (their
    ids make a later second write harmless).
    """

    def __init__(self, redis: Any) -> None:
        self.pool = redis.connection_pool
        self.conn: Any = None
        self.pid = os.getpid()
        self.unconfirmed: list[list[str]] = []

    def send(self, payload: list[str], *, wait: bool) -> None:
        if wait or len(self.unconfirmed) >= CONFIRM_EVERY:
            self.settle()
        try:
            if self.conn is None or self.pid != os.getpid():
                self.pid = os.getpid()
                self.unconfirmed = []  # a forked child never sent its parent's pushes
                self.conn = self.pool.get_connection()
            self.conn.send_packed_command(self.conn.pack_command("RPUSH", QUEUE, *payload))
        except Exception:
            self.drop()
            raise
        self.unconfirmed.append(payload)
        if wait:
            self.settle()

    def settle(self) -> None:
        """Read the answers to the pushes sent; write the events Redis did not take now."""
        pushes, self.unconfirmed = self.unconfirmed, []
        for n, payload in enumerate(pushes):
            try:
                self.conn.read_response()
            except Exception as exc:
                refused = [payload]
                if not isinstance(exc, ResponseError):  # the connection: the rest is unknown
                    refused += pushes[n + 1 :]
                    self.drop()
                self.rescue(refused)
                if self.conn is None:
                    return

    @staticmethod
    def rescue(pushes: list[list[str]]) -> None:
        events = [json.loads(p) for payload in pushes for p in payload]
        logger.warning("event queue did not confirm: writing %d event(s) now", len(events))
        try:
            write(events)
        except Exception:  # the page is served all the same
            logger.exception("%d tracking event(s) lost: no queue, no database", len(events))

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.disconnect()
        self.conn = None


def _sender() -> _Sender | None:
    client = _cache_client()
    if client is None:
        return None
    held: _Sender | None = getattr(client, "_crosssell_sender", None)
    if held is None:
        held = client._crosssell_sender = _Sender(_writer(client))
    return held


def settle() -> None:
    """Make sure every event this thread pushed is in Redis (or written)."""
    sender = _sender()
    if sender is not None:
        sender.settle()


#: The events of the current request, queued together when it ends (see :func:`collecting`).
_pending: ContextVar[list[str] | None] = ContextVar("crosssell_pending_events", default=None)


@contextmanager
def collecting() -> Iterator[None]:
    """Hold the events pushed inside the block and queue them in one push at its end, without
    waiting for Redis's answer (the middleware wraps each request in it: a page with three
    widgets costs one push, and no round trip)."""
    token = _pending.set([])
    try:
        yield
    finally:
        held = _pending.get()
        _pending.reset(token)
        if held:
            _queue(held, wait=False)


def push(events: Iterable[dict[str, Any]]) -> None:
    """Queue events for :func:`flush`; written directly when there is no Redis to queue in."""
    payload = [json.dumps(e, separators=(",", ":"), default=str) for e in events]
    if not payload:
        return
    held = _pending.get()
    if held is not None:
        held.extend(payload)
        return
    _queue(payload, wait=True)


def _queue(payload: list[str], *, wait: bool) -> None:
    sender = _sender()
    if sender is not None:
        try:
            sender.send(payload, wait=wait)
            return
        except Exception:
            logger.warning("event queue unavailable: writing %d event(s) now", len(payload))
    write([json.loads(p) for p in payload])


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
    # A click whose impression never reached the database (a forged id) keeps no link.
    known = {
        str(pk)
        for pk in Impression.objects.filter(
            id__in={e["impression"] for e in events if e.get("impression")}
        ).values_list("id", flat=True)
    }
    others = [
        Event(
            id=e["id"],
            type=e["type"],
            impression_id=e["impression"] if e.get("impression") in known else None,
            variant_id=e.get("variant"),
            visitor=e["visitor"],
            product_id=e["product"],
            order_ref=e.get("order", ""),
            quantity=e.get("quantity", 0),
            revenue=Decimal(str(e.get("revenue", "0"))),
            created_at=_when(e),
        )
        for e in events
        if e["type"] != "impression"
    ]
    Event.objects.bulk_create(others, ignore_conflicts=True)
    return len(events)


def _when(event: dict[str, Any]) -> datetime:
    value = parse_datetime(event.get("at", "")) if event.get("at") else None
    return value or timezone.now()


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
        "at": timezone.now().isoformat(),
        "placement": placement,
        "visitor": visitor,
        "variant": variant,
        "sources": [int(s) for s in sources],
        "products": [int(p) for p in products],
        "strategies": list(strategies),
    }


def sign(impression: str, variant: int | None, products: Sequence[int], **extra: Any) -> str:
    """The token of one impression: its id, variant and products, signed once for the whole
    list (a link adds the product it leads to, which must be one of them).

    A widget's token is compact (``<id in base64>~<variant>~<id.id...>``, about 100 characters:
    every link and form of the widget carries it); one with ``extra`` fields (the API's, which
    also name the placement, sources and strategies) is signed JSON.
    """
    signer = _signer(django_settings.SECRET_KEY)
    if extra:
        data = {"i": impression, "v": variant, "p": [int(p) for p in products], **extra}
        return signer.sign_object(data, compress=len(products) > 8)
    uid = base64.urlsafe_b64encode(uuid.UUID(impression).bytes).rstrip(b"=").decode()
    shown = ".".join(str(int(p)) for p in products)
    return signer.sign(f"{uid}~{variant or ''}~{shown}")


#: The payload of a compact token: the impression's UUID in base64, the variant, the products.
COMPACT = re.compile(r"([A-Za-z0-9_-]{22})~([0-9]{0,18})~([0-9.]{0,2000})")


@functools.lru_cache(maxsize=4)
def _signer(secret: str) -> signing.TimestampSigner:
    """One signer per secret key (making one per token cost a third of the signing)."""
    return signing.TimestampSigner(key=secret, salt=SIGNER_SALT)


def record_impression(
    placement: str,
    visitor: str,
    sources: Sequence[int],
    products: Sequence[int],
    strategies: Sequence[str],
    variant: Variant | None = None,
) -> Rendered:
    """Queue one impression; returns its id and the token the widget's links carry."""
    event = impression_event(
        placement, visitor, sources, products, strategies, variant.pk if variant else None
    )
    push([event])
    token = sign(event["id"], event["variant"], event["products"])
    return Rendered(event["id"], token, variant)


def read_token(token: str) -> dict[str, Any] | None:
    """The impression a link or form carried, or ``None`` for a forged or stale token."""
    signer = _signer(django_settings.SECRET_KEY)
    try:
        payload = signer.unsign(token, max_age=settings.ATTRIBUTION_WINDOW)
        compact = COMPACT.fullmatch(payload)
        if compact:
            uid, variant, shown = compact.groups()
            return {
                "i": str(uuid.UUID(bytes=base64.urlsafe_b64decode(uid + "=="))),
                "v": int(variant) if variant else None,
                "p": [int(p) for p in shown.split(".") if p],
            }
        data = signer.unsign_object(token, max_age=settings.ATTRIBUTION_WINDOW)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("i"), str):
        return None
    return data


def token_products(data: dict[str, Any]) -> set[int]:
    """The products an impression token vouches for."""
    shown = data.get("p")
    if isinstance(shown, list):
        return {int(p) for p in shown if isinstance(p, int)}
    return set()


def record_touch(holder: Any, token: str, event_type: str, product_id: int | None = None) -> bool:
    """A click or an add-to-cart from a widget: queue the event and remember it in the session
    so checkout can attribute the order line.

    ``holder`` is the request (or its session); ``product_id`` must be one of the products the
    impression showed. Returns ``False`` for a bad token or a product it did not show.
    """
    data = read_token(token)
    if data is None or product_id is None:
        return False
    product_id = int(product_id)
    if product_id not in token_products(data):
        return False
    session = _session(holder)
    touches = dict(session.get(SESSION_TOUCHES, {}))
    earlier = touches.get(str(product_id))
    if event_type == Event.Type.CLICK and earlier and earlier[0] == data["i"]:
        return True  # the same link again (a reload, a redirect back): one click
    visitor = visitor_id(holder)
    push(
        [
            {
                "type": event_type,
                "id": str(uuid.uuid4()),
                "at": timezone.now().isoformat(),
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


def attribute_order(holder: Any, order_ref: str, lines: Sequence[tuple[int, int, Decimal]]) -> int:
    """At checkout (``holder``: the request, or its session): one purchase event per line of
    ``(product, quantity, unit price)``, tied to the impression the product was clicked or added
    from within the attribution window, and to the visitor's variant of the running experiment
    (so holdouts count their orders too). Returns how many lines were attributed to an
    impression."""
    visitor = visitor_id(holder)
    session = _session(holder)
    touches: dict[str, list[Any]] = dict(session.get(SESSION_TOUCHES, {}))
    window = timedelta(seconds=settings.ATTRIBUTION_WINDOW)
    now = timezone.now()
    running = running_experiment()
    variant = assign(running[0], running[1], visitor).pk if running else None
    events = []
    attributed = 0
    for product, quantity, price in lines:
        touch = touches.pop(str(product), None)
        impression = touch_variant = None
        if touch:
            at = parse_datetime(touch[2])
            if at is not None and now - at <= window:
                impression, touch_variant = touch[0], touch[1]
                attributed += 1
        events.append(
            {
                "type": Event.Type.PURCHASE,
                "id": str(uuid.uuid4()),
                "at": now.isoformat(),
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
