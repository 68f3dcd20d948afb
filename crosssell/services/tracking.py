"""First-party tracking: impressions, clicks, add-to-carts and attributed purchases.

The recording API the middleware, views and template tags call. Visitor ids and variant
assignment live in :mod:`crosssell.services.visitors`; holding, batching, pushing and flushing
the events (a request never writes one to the database) in :mod:`crosssell.services.outbox`;
the names callers use from both are re-exported here.

What the events may count for (see TESTING.md, "Attacks refused"): an impression's token is
served to one visitor (:mod:`crosssell.services.impression_tokens`) and counts for nobody else; a
click or an add-to-cart counts once per impression (its id is derived from the impression's, so
replays collapse on the primary key); a purchase is credited to the buyer's own variant only.
"""

from __future__ import annotations

import functools
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crosssell.conf import settings
from crosssell.models import Event, Variant
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

# Visitors and the event outbox live in their own modules (issue 17); their names are re-exported
# here, since the middleware, views, tags and tests call them as ``tracking.X``. The outbox's
# state (``_outbox``, its locks and hooks) exists once, in crosssell.services.outbox.
from crosssell.services.outbox import (  # noqa: F401  (re-exported)
    MOVE_BATCH,
    PROCESSING,
    QUEUE,
    _encode,
    _outbox,
    _push_encoded,
    _redis,
    collecting,
    drop_held,
    flush,
    pending,
    push,
    settle,
    write,
)
from crosssell.services.visitors import (  # noqa: F401  (re-exported)
    COOKIE,
    SESSION_VISITOR,
    NamedVisitor,
    _session,
    acting_as,
    active_experiment,
    added_to_cart,
    assign,
    current_visitor,
    known_visitor,
    own_variants,
    running_experiment,
    valid_visitor,
    variant_for,
    visitor_id,
)

SESSION_TOUCHES = "crosssell_touches"


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
