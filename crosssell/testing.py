"""Helpers for tests of shops that install crosssell: create products through the field mapping,
so the same test works with the default product model and with a shop's own."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from django.db.models import Model

from crosssell.models import Purchase, get_product_model, product_field

_seq = itertools.count(1)


def make_product(
    name: str | None = None,
    *,
    category: str = "",
    price: Decimal | float | str = "10.00",
    active: bool = True,
    stock: int | None = None,
    key: str | None = None,
    text: str = "",
    **extra: Any,
) -> Model:
    """Create a product of the shop's product model; roles the model lacks are ignored."""
    n = next(_seq)
    values = {
        "key": key or f"T{n:06d}",
        "name": name or f"Product {n}",
        "category": category,
        "price": Decimal(str(price)),
        "active": active,
        "stock": stock,
        "text": text,
    }
    kwargs: dict[str, Any] = {}
    for role, value in values.items():
        lookup = product_field(role)
        if lookup and "__" not in lookup:
            kwargs[lookup] = value
    kwargs.update(extra)
    return get_product_model()._default_manager.create(**kwargs)


def buy(order: str, customer: str, *products: Model) -> None:
    """One order of ``products`` by ``customer``: a purchase row each."""
    Purchase.objects.bulk_create(
        [Purchase(order_ref=order, customer_ref=customer, product_id=p.pk) for p in products]
    )
