"""Recording purchases: one call at checkout, on commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from crosssell.models import Purchase
from crosssell.services import identity, incremental


@dataclass(frozen=True)
class Line:
    """One order line handed to :func:`record_order`."""

    product_id: int
    quantity: int = 1
    unit_price: Decimal | None = None


def record_order(
    order_ref: str,
    lines: Iterable[Line],
    *,
    customer_ref: str = "",
    email: str = "",
    purchased_at: datetime | None = None,
) -> list[Purchase]:
    """Record an order's lines as purchases, in the caller's transaction.

    Recording the same order again adds nothing (order and product are unique together), so a
    retried checkout cannot count twice. After the transaction commits, the products involved
    are queued for an incremental update of their lists; if the queue is down the order is
    still recorded and the next rebuild catches up.

    Parameters
    ----------
    order_ref
        The shop's order number.
    lines
        The order's products; lines of the same product are merged.
    customer_ref
        The customer's id (``crosssell.models.user_customer_ref(user)``); empty for a guest.
    email
        The email the order was placed with, if any. Only its keyed hash is stored: a guest's
        orders under one email count as one customer for the privacy threshold, and as the
        signed-in customer's own once an order of theirs carried it
        (:mod:`crosssell.services.identity`).
    """
    when = purchased_at or timezone.now()
    merged: dict[int, Line] = {}
    for line in lines:
        if line.quantity < 1:
            raise ValueError(f"quantity must be at least 1, not {line.quantity}")
        prev = merged.get(line.product_id)
        merged[line.product_id] = (
            line
            if prev is None
            else Line(line.product_id, prev.quantity + line.quantity, line.unit_price)
        )
    who, key = identity.resolve(order_ref, customer_ref, email)
    # A signed-in order with an email takes over that email's guest orders: their products'
    # counts can drop, so their lists are updated too.
    linked = identity.link_guest_orders(customer_ref, key)
    objs = [
        Purchase(
            order_ref=order_ref,
            customer_ref=customer_ref,
            identity=who,
            email_key=key,
            product_id=pid,
            quantity=line.quantity,
            unit_price=line.unit_price,
            purchased_at=when,
        )
        for pid, line in merged.items()
    ]
    created = Purchase.objects.bulk_create(objs, ignore_conflicts=True)
    product_ids = sorted(set(merged) | set(linked))
    incremental.mark_pending(product_ids)
    transaction.on_commit(lambda: incremental.schedule(product_ids))
    return created
