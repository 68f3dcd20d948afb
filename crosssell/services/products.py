"""Reading the product model: shortcuts to the shop's catalog (:mod:`crosssell.services.catalog`).

Kept for callers written before the catalog existed; each function delegates to
:func:`~crosssell.services.catalog.get_catalog`, so a ``CROSSSELL_CATALOG`` subclass applies.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Model, Q, QuerySet

from crosssell.services import cache as cs_cache
from crosssell.services.catalog import get_catalog


def products() -> QuerySet[Model]:
    """All products of the shop's product model, one row per product."""
    return get_catalog().products()


def sellable_q(prefix: str = "") -> Q:
    """A filter for sellable products: active, in stock (or not tracked) and priced above zero.

    ``prefix`` reaches the product through a relation (``"target__"`` from a recommendation).
    """
    return get_catalog().sellable_q(prefix)


def sellable_products() -> QuerySet[Model]:
    """The products a widget may show."""
    return get_catalog().sellable_products()


def read(product: Model, role: str, default: Any = None) -> Any:
    """The value of a mapped field (``"name"``, ``"price"``...) of a loaded product."""
    return get_catalog().read(product, role, default)


def price_of(product: Model) -> Decimal:
    """The product's price (zero when the model has none)."""
    return get_catalog().price_of(product)


def is_sellable(product: Model) -> bool:
    """Whether a loaded product may be shown in a widget (same rule as :func:`sellable_q`)."""
    return get_catalog().is_sellable(product)


def catalog_changed() -> None:
    """Tell crosssell that products changed behind the ORM's signals (``QuerySet.update``,
    ``bulk_create``, SQL): the cached widgets and lists are recomputed once the transaction
    commits. A product saved with ``save()`` or deleted needs no call."""
    cs_cache.bump_on_commit()
