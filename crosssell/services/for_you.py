"""Recommended for you: a signed-in customer's recommendations, over the products they bought.

One rule for the widget (``{% recommended_for_you %}``) and the API (``me/``): the customer's
history is :func:`history` (at most :data:`MAX_HISTORY` distinct products, most recently bought
first), its first :data:`~crosssell.services.serving.MAX_CART` products are the sources and
every product of it is left out (:func:`recommend_for`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

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


@dataclass(frozen=True)
class History:
    """What "recommended for you" reads of one customer.

    Attributes
    ----------
    bought
        The distinct products bought, most recently bought first (at most
        :data:`MAX_HISTORY`): never recommended back.
    """

    bought: tuple[int, ...]

    @property
    def sources(self) -> list[int]:
        """The products the lists are merged from: the most recent, a cart's worth."""
        return list(self.bought[:MAX_CART])

    @property
    def key(self) -> str:
        """Names the history in a cache key (changes with any product bought)."""
        return f"{zlib.crc32(','.join(map(str, self.bought)).encode())}:{len(self.bought)}"


def history(customer_ref: str) -> History:
    """The customer's :class:`History` (empty for a guest), in one query."""
    return History(tuple(purchased_product_ids(customer_ref)))


def recommend_for(
    history: History, limit: int | None = None, build_id: int | None = None
) -> list[Item]:
    """Up to ``limit`` products for a customer's history, never one of its products.

    Parameters
    ----------
    history
        The customer's :func:`history`; an empty one gets the bestsellers.
    limit
        How many items; ``CROSSSELL_DEFAULT_LIMIT`` when ``None``.
    build_id
        Serve this build's rows (an experiment variant's), else the live build's.

    Returns
    -------
    list of Item
        As :func:`crosssell.services.serving.recommend`.
    """
    return recommend(history.sources, limit, exclude=history.bought, build_id=build_id)


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
    return recommend_for(history(customer_ref), limit)


__all__ = [
    "MAX_HISTORY",
    "History",
    "history",
    "purchased_product_ids",
    "recommend_for",
    "recommend_for_customer",
]
