"""First-party tracking: impressions, clicks, add-to-carts and attributed purchases.

A request never writes an event to the database: events are pushed to a Redis list and a task
(:func:`flush`) writes them in bulk. The flush first moves a batch to a processing list (one
atomic script), writes it with ``ignore_conflicts`` on the events' UUIDs, then drops the
processing list, so a flush that is late, fails, or whose worker is killed loses nothing and
duplicates nothing. Without Redis (or when it is down) events are written directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core import signing
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

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


def visitor_id(session: Any) -> str:
    """A stable, random visitor id kept in the session (never the user's identity)."""
    value = session.get(SESSION_VISITOR)
    if not value:
        value = uuid.uuid4().hex
        session[SESSION_VISITOR] = value
    return str(value)


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

    return cs_cache.get_or_set(f"experiment:{placement}", compute)


def running_experiment() -> tuple[Experiment, list[Variant]] | None:
    """The experiment whose variants an order counts for (the oldest running one)."""

    def compute() -> tuple[Experiment, list[Variant]] | None:
        exp = Experiment.objects.filter(is_active=True).order_by("started_at", "pk").first()
        variants = list(exp.variants.order_by("pk")) if exp else []
        return (exp, variants) if exp and variants else None

    return cs_cache.get_or_set("experiment:running", compute)


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
    """The raw Redis client behind the cache, when the cache is Redis."""
    cache = caches[settings.CACHE_ALIAS]
    client = getattr(cache, "_cache", None)
    if client is None or not hasattr(client, "get_client"):
        return None
    return client.get_client(write=True)


def push(events: Iterable[dict[str, Any]]) -> None:
    """Queue events for :func:`flush`; written directly when there is no Redis to queue in."""
    payload = [json.dumps(e, separators=(",", ":"), default=str) for e in events]
    if not payload:
        return
    redis = _redis()
    if redis is not None:
        try:
            redis.rpush(QUEUE, *payload)
            return
        except Exception:
            logger.warning("event queue unavailable: writing %d event(s) now", len(payload))
    write([json.loads(p) for p in payload])


def flush(batch: int = 1000, max_batches: int = 1000) -> int:
    """Write queued events to the database in bulk; returns how many were written."""
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
    """What a widget needs to carry its impression: the signed token for links and forms."""

    impression: str
    token: str
    variant: Variant | None


def record_impression(
    placement: str,
    visitor: str,
    sources: Sequence[int],
    products: Sequence[int],
    strategies: Sequence[str],
    variant: Variant | None = None,
) -> Rendered:
    """Queue one impression; returns its id and the token the widget's links carry."""
    impression = uuid.uuid4()
    push(
        [
            {
                "type": "impression",
                "id": str(impression),
                "at": timezone.now().isoformat(),
                "placement": placement,
                "visitor": visitor,
                "variant": variant.pk if variant else None,
                "sources": [int(s) for s in sources],
                "products": [int(p) for p in products],
                "strategies": list(strategies),
            }
        ]
    )
    token = signing.dumps(
        {"i": str(impression), "v": variant.pk if variant else None}, salt=SIGNER_SALT
    )
    return Rendered(str(impression), token, variant)


def item_token(rendered: Rendered, product_id: int) -> str:
    """The token one item's link or checkbox carries: its impression, variant and product."""
    return signing.dumps(
        {"i": rendered.impression, "v": rendered.variant.pk if rendered.variant else None,
         "p": int(product_id)},
        salt=SIGNER_SALT,
    )  # fmt: skip


def read_token(token: str) -> dict[str, Any] | None:
    """The impression a link or form carried, or ``None`` for a forged or stale token."""
    try:
        data = signing.loads(token, salt=SIGNER_SALT, max_age=settings.ATTRIBUTION_WINDOW)
    except signing.BadSignature:
        return None
    return data if isinstance(data, dict) and "i" in data else None


def record_touch(session: Any, token: str, event_type: str, product_id: int | None = None) -> bool:
    """A click or an add-to-cart from a widget: queue the event and remember it in the session
    so checkout can attribute the order line. The product is the token's own (an item token)
    or ``product_id``. Returns ``False`` for a bad token."""
    data = read_token(token)
    if data is None:
        return False
    product_id = data.get("p", product_id)
    if product_id is None:
        return False
    touches = dict(session.get(SESSION_TOUCHES, {}))
    earlier = touches.get(str(int(product_id)))
    if event_type == Event.Type.CLICK and earlier and earlier[0] == data["i"]:
        return True  # the same link again (a reload, a redirect back): one click
    visitor = visitor_id(session)
    push(
        [
            {
                "type": event_type,
                "id": str(uuid.uuid4()),
                "at": timezone.now().isoformat(),
                "impression": data["i"],
                "variant": data.get("v"),
                "visitor": visitor,
                "product": int(product_id),
            }
        ]
    )
    touches[str(int(product_id))] = [data["i"], data.get("v"), timezone.now().isoformat()]
    session[SESSION_TOUCHES] = touches
    return True


def attribute_order(session: Any, order_ref: str, lines: Sequence[tuple[int, int, Decimal]]) -> int:
    """At checkout: one purchase event per line of ``(product, quantity, unit price)``, tied to
    the impression the product was clicked or added from within the attribution window, and to
    the visitor's variant of the running experiment (so holdouts count their orders too).
    Returns how many lines were attributed to an impression."""
    visitor = visitor_id(session)
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
