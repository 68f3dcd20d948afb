"""Recording purchases: one call at checkout, on commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from crosssell.models import Purchase
from crosssell.services import incremental


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
    objs = [
        Purchase(
            order_ref=order_ref,
            customer_ref=customer_ref,
            product_id=pid,
            quantity=line.quantity,
            unit_price=line.unit_price,
            purchased_at=when,
        )
        for pid, line in merged.items()
    ]
    created = Purchase.objects.bulk_create(objs, ignore_conflicts=True)
    product_ids = sorted(merged)
    incremental.mark_pending(product_ids)
    transaction.on_commit(lambda: incremental.schedule(product_ids))
    return created
