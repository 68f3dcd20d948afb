"""Recommended for you: a signed-in customer's recommendations, over the products they bought."""

from __future__ import annotations

from django.db.models import F, Max

from crosssell.models import Purchase
from crosssell.services.serving import MAX_CART, Item, recommend

#: How many distinct bought products are read (and never recommended back).
MAX_HISTORY = 1_000


def purchased_product_ids(customer_ref: str, n: int = MAX_HISTORY) -> list[int]:
    """The distinct products a customer bought, most recently bought first.

    Parameters
    ----------
    customer_ref
        The customer's reference (``crosssell.models.user_customer_ref(user)``); an empty
        reference (a guest) has no history.
    n
        At most this many products.

    Returns
    -------
    list of int
        Product primary keys, read in one query.
    """
    if not customer_ref:
        return []
    rows = (
        Purchase.objects.filter(customer_ref=customer_ref)
        .values("product_id")
        .annotate(last=Max("purchased_at"))
        .order_by(F("last").desc(nulls_last=True), "product_id")
        .values_list("product_id", flat=True)[:n]
    )
    return [int(pk) for pk in rows]


def recommend_for_customer(customer_ref: str, limit: int | None = None) -> list[Item]:
    """Up to ``limit`` products for one customer, never one they already bought.

    The customer's most recent purchases (at most a cart's worth) are the sources, so their
    lists are merged as a cart's are; a customer with no history gets the bestsellers. Only
    this customer's purchases are read.

    Parameters
    ----------
    customer_ref
        Whose history to use.
    limit
        How many items; ``CROSSSELL_DEFAULT_LIMIT`` when ``None``.

    Returns
    -------
    list of Item
        As :func:`crosssell.services.serving.recommend`.
    """
    bought = purchased_product_ids(customer_ref)
    return recommend(bought[:MAX_CART], limit, exclude=bought)


__all__ = ["MAX_HISTORY", "purchased_product_ids", "recommend_for_customer"]
