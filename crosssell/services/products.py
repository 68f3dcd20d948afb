"""Reading the product model through the field mapping (``CROSSSELL_PRODUCT_FIELDS``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Model, Q, QuerySet

from crosssell.models import get_product_model, product_field
from crosssell.services import cache as cs_cache


def products() -> QuerySet[Model]:
    """All products of the shop's product model."""
    return get_product_model()._default_manager.all()


def sellable_q(prefix: str = "") -> Q:
    """A filter for sellable products: active, in stock (or not tracked) and priced above zero.

    ``prefix`` reaches the product through a relation (``"target__"`` from a recommendation).
    """
    q = Q()
    active = product_field("active")
    if active:
        q &= Q(**{f"{prefix}{active}": True})
    price = product_field("price")
    if price:
        q &= Q(**{f"{prefix}{price}__gt": 0})
    stock = product_field("stock")
    if stock:
        q &= Q(**{f"{prefix}{stock}__isnull": True}) | Q(**{f"{prefix}{stock}__gt": 0})
    return q


def sellable_products() -> QuerySet[Model]:
    """The products a widget may show."""
    return products().filter(sellable_q())


def read(product: Model, role: str, default: Any = None) -> Any:
    """The value of a mapped field (``"name"``, ``"price"``...) of a loaded product."""
    lookup = product_field(role)
    if not lookup:
        return default
    value: Any = product
    for part in lookup.split("__"):
        value = getattr(value, part, None)
        if value is None:
            return default
    return value


def price_of(product: Model) -> Decimal:
    """The product's price (zero when the model has none)."""
    value = read(product, "price", Decimal("0"))
    return value if isinstance(value, Decimal) else Decimal(str(value))


def is_sellable(product: Model) -> bool:
    """Whether a loaded product may be shown in a widget (same rule as :func:`sellable_q`)."""
    if product_field("active") and not read(product, "active", True):
        return False
    if product_field("price") and price_of(product) <= 0:
        return False
    stock = read(product, "stock")
    return stock is None or stock > 0


def catalog_changed() -> None:
    """Tell crosssell that products changed behind the ORM's signals (``QuerySet.update``,
    ``bulk_create``, SQL): the cached widgets and lists are recomputed once the transaction
    commits. A product saved with ``save()`` or deleted needs no call."""
    transaction.on_commit(cs_cache.bump)
