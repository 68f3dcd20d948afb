"""Oscar's orders as crosssell's purchases: one order at checkout, or the whole history in bulk.

A line of a child product (a size, a colour) is recorded as its parent, the product whose page
customers see, so the parent's lists learn from every variant sold. The unit price is the
price the customer paid, including tax (``unit_price_incl_tax``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from oscar.core.loading import get_model

from crosssell.models import Purchase, user_customer_ref
from crosssell.services import cache as cs_cache
from crosssell.services import identity
from crosssell.services.purchases import Line, record_order

logger = logging.getLogger(__name__)


def browsable_ids(product_ids: Sequence[int]) -> dict[int, int]:
    """Each product id mapped to the product shown for it: a child's parent, else itself."""
    product = get_model("catalogue", "Product")
    wanted = {int(p) for p in product_ids}
    rows = product._default_manager.filter(pk__in=wanted).values_list("pk", "parent_id")
    return {int(pk): int(parent or pk) for pk, parent in rows}


def order_lines(order: Any) -> list[Line]:
    """The order's lines as crosssell lines (children as their parents; deleted products out)."""
    lines = [line for line in order.lines.all() if line.product_id is not None]
    shown = browsable_ids([line.product_id for line in lines])
    return [
        Line(shown.get(line.product_id, line.product_id), int(line.quantity), _price(line))
        for line in lines
        if line.quantity and line.quantity > 0
    ]


def _price(line: Any) -> Decimal | None:
    value = line.unit_price_incl_tax
    if value is None:
        value = line.unit_price_excl_tax
    return None if value is None else Decimal(value)


def customer_of(order: Any) -> str:
    """The order's customer as crosssell's reference ("" for a guest)."""
    return user_customer_ref(order.user) if order.user_id else ""


def record(order: Any) -> list[Purchase]:
    """Record one placed Oscar order (``order_placed``): idempotent, its date kept."""
    lines = order_lines(order)
    if not lines:
        return []
    return record_order(
        str(order.number),
        lines,
        customer_ref=customer_of(order),
        email=_email(order),
        purchased_at=order.date_placed,
    )


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill read and wrote."""

    orders: int
    lines: int
    created: int


def _batches(since: datetime | None, batch: int) -> Iterator[list[Any]]:
    order = get_model("order", "Order")
    qs = order._default_manager.order_by("pk")
    if since is not None:
        qs = qs.filter(date_placed__gte=since)
    last = 0
    while True:
        chunk = list(
            qs.filter(pk__gt=last).select_related("user").prefetch_related("lines")[:batch]
        )
        if not chunk:
            return
        last = chunk[-1].pk
        yield chunk


def backfill(*, since: datetime | None = None, batch: int = 2000) -> BackfillResult:
    """Load Oscar's existing orders as purchases, with their dates, in bulk.

    Orders are read in batches of ``batch`` and written with one bulk insert per batch (a few
    queries each, whatever the batch's size); an order already recorded adds nothing, so the
    backfill can be run again (or after orders were recorded at checkout). Customers are told
    apart as ``record_order`` does it: a guest's orders count as the account that ordered with
    the same e-mail. No incremental update is queued: run a rebuild afterwards
    (``manage.py crosssell_rebuild``).

    Parameters
    ----------
    since
        Only orders placed at or after this time.
    batch
        Orders per database round trip.
    """
    orders = lines = created = 0
    for chunk in _batches(since, batch):
        all_lines = [line for o in chunk for line in o.lines.all() if line.product_id]
        shown = browsable_ids([line.product_id for line in all_lines])
        by_order: list[tuple[Any, list[Purchase]]] = []
        for o in chunk:
            merged: dict[int, Purchase] = {}
            for line in o.lines.all():
                if not line.product_id or not line.quantity or line.quantity < 1:
                    continue
                pid = shown.get(line.product_id, line.product_id)
                if pid in merged:
                    merged[pid].quantity += int(line.quantity)
                    continue
                merged[pid] = Purchase(
                    order_ref=str(o.number),
                    customer_ref=customer_of(o),
                    product_id=pid,
                    quantity=int(line.quantity),
                    unit_price=_price(line),
                    purchased_at=o.date_placed,
                )
            by_order.append((o, list(merged.values())))
        objs = [obj for _, rows in by_order for obj in rows]
        with transaction.atomic():
            recorded, links = _set_identity(by_order)
            new = [o for o in objs if (o.order_ref, o.product_id) not in recorded]
            Purchase.objects.bulk_create(new, ignore_conflicts=True, batch_size=5000)
            if links:
                # Guest orders recorded earlier under an e-mail now count as its account.
                Purchase.objects.filter(identity__in=list(links)).update(
                    identity=Case(
                        *(When(identity=old, then=Value(to)) for old, to in links.items()),
                        default=F("identity"),
                    )
                )
        created += len(new)
        orders += len(chunk)
        lines += len(objs)
    if created:
        cs_cache.bump_on_commit()
    return BackfillResult(orders, lines, created)


def _set_identity(
    by_order: list[tuple[Any, list[Purchase]]],
) -> tuple[set[tuple[str, int]], dict[str, str]]:
    """Who each line counts as for the privacy threshold, as ``record_order`` decides it for
    orders recorded one by one in this order (:func:`crosssell.services.identity.resolve` and
    :func:`~crosssell.services.identity.link_guest_orders`): the customer; else the account
    that ordered with the guest's e-mail (the smallest reference), else the e-mail (keyed,
    never stored); else the order.

    Returns the ``(order_ref, product_id)`` pairs already recorded (one query, which also reads
    the accounts of the batch's e-mails) and the identities of guest orders recorded earlier
    that a signed-in order of the batch takes over (``{"e:<key>": "u:<customer>"}``).
    """
    keys = {str(o.number): identity.email_key(_email(o)) for o, _ in by_order}
    wanted = sorted({k for k in keys.values() if k})
    seen = Purchase.objects.filter(
        Q(order_ref__in=list(keys)) | (Q(email_key__in=wanted) & ~Q(customer_ref=""))
    ).values_list("order_ref", "product_id", "email_key", "customer_ref")
    recorded: set[tuple[str, int]] = set()
    owners: dict[str, str] = {}
    for ref, pid, key, customer in seen:
        if ref in keys:
            recorded.add((str(ref), int(pid)))
        if key and customer and (key not in owners or customer < owners[key]):
            owners[key] = str(customer)
    links: dict[str, str] = {}
    guests: dict[str, list[Purchase]] = {}  # this batch's lines under an e-mail's identity
    for o, rows in by_order:
        key = keys[str(o.number)]
        customer = customer_of(o)
        if customer:
            who = f"u:{customer}"
            if key:
                # record_order's link_guest_orders: earlier guest orders become this account's
                for row in guests.pop(key, []):
                    row.identity = who
                links.setdefault(f"e:{key}", who)
                if key not in owners or customer < owners[key]:
                    owners[key] = customer
        elif key:
            who = f"u:{owners[key]}" if key in owners else f"e:{key}"
        else:
            who = f"o:{o.number}"
        for row in rows:
            row.email_key = key
            row.identity = who
            if who.startswith("e:"):
                guests.setdefault(key, []).append(row)
    return recorded, links


def _email(order: Any) -> str:
    """The e-mail an Oscar order was placed with (the customer's, or the guest's)."""
    return str(order.email or "")
