"""A customer's data: export it, or erase it (the next build forgets it)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from crosssell.models import PendingUpdate, Purchase
from crosssell.services import cache as cs_cache


def export_customer(customer_ref: str) -> dict[str, Any]:
    """Everything crosssell holds about one customer: their order lines.

    Recommendations are not personal data here: they are computed over many customers and a
    pair is only published when at least ``CROSSSELL_MIN_CUSTOMERS`` bought it.
    """
    if not customer_ref:
        raise ValueError("a customer reference is required")
    lines = Purchase.objects.filter(customer_ref=customer_ref).order_by("purchased_at", "pk")
    return {
        "customer": customer_ref,
        "purchases": [
            {
                "order": p.order_ref,
                "product_id": p.product_id,
                "quantity": p.quantity,
                "unit_price": None if p.unit_price is None else str(p.unit_price),
                "purchased_at": p.purchased_at.isoformat() if p.purchased_at else None,
            }
            for p in lines
        ],
    }


@transaction.atomic
def erase_customer(customer_ref: str) -> int:
    """Delete a customer's purchases; returns how many order lines were deleted.

    Their products are queued for an incremental update, and the next rebuild no longer sees
    them, so no published recommendation rests on their purchases afterwards.
    """
    if not customer_ref:
        raise ValueError("a customer reference is required")
    qs = Purchase.objects.filter(customer_ref=customer_ref)
    product_ids = sorted(set(qs.values_list("product_id", flat=True)))
    deleted, _ = qs.delete()
    PendingUpdate.objects.bulk_create([PendingUpdate(product_id=p) for p in product_ids])
    transaction.on_commit(cs_cache.bump)
    return deleted
