"""The sample shop's receivers of crosssell's signals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Q
from django.dispatch import receiver

from crosssell.services.ids import parse_id
from crosssell.signals import customer_erased
from shop.models import Order


@receiver(customer_erased, dispatch_uid="shop-erase-orders")
def erase_orders(
    sender: Any,
    *,
    customer_ref: str = "",
    email: str = "",
    order_refs: Sequence[str] = (),
    **kwargs: Any,
) -> int:
    """Delete the erased customer's orders (their lines, names and emails go with them).

    Deleted rather than blanked: an order kept without its name still holds the basket, and
    the shop's orders are what a new import would read purchases from. Returns how many.
    """
    where = Q(number__in=list(order_refs))
    user_id = parse_id(customer_ref)
    if user_id is not None:
        where |= Q(user_id=user_id)
    if email.strip():
        where |= Q(email__iexact=email.strip())
    _, by_model = Order.objects.filter(where).delete()
    return int(by_model.get(Order._meta.label, 0))
