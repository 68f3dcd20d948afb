"""Helpers for tests of shops that install crosssell: create products through the field mapping,
so the same test works with the default product model and with a shop's own."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
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


def paired_shop(
    n_products: int = 30, n_orders: int = 600, n_customers: int = 150, seed: int = 7
) -> list[Model]:
    """Products in pairs (0-1, 2-3, ...) bought together by many customers, plus one product
    of noise per order: a shop whose every product has a clear first companion."""
    products = [make_product(f"P{i}", category=f"C{i % 3}") for i in range(n_products)]
    rnd = random.Random(seed)
    rows = []
    for o in range(n_orders):
        a = rnd.randrange(0, n_products, 2)
        basket = {a, a + 1, rnd.randrange(n_products)}
        rows += [
            Purchase(
                order_ref=f"o{o}", customer_ref=f"c{o % n_customers}", product_id=products[i].pk
            )
            for i in basket
        ]
    Purchase.objects.bulk_create(rows)
    return products


def live_list(product: Model, kind: str = "bought_together") -> list[int]:
    """The product's list in the live build, in rank order."""
    from crosssell.models import Build, Recommendation

    return list(
        Recommendation.objects.filter(
            build__state=Build.State.LIVE, kind=kind, source_id=product.pk
        )
        .order_by("rank")
        .values_list("target_id", flat=True)
    )


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> float:
    """Seconds until ``predicate()`` is true; ``AssertionError`` after ``timeout`` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout}s")


def camera_shop() -> dict[str, Model]:
    """Cameras go with cards (5 customers) and bags (3); beans with mugs (4); a lens, a
    filter and a poster never sold."""
    p = {
        n: make_product(n, category=c, key=f"SKU-{n.upper()}")
        for n, c in [
            ("camera", "Photo"),
            ("card", "Photo"),
            ("bag", "Photo"),
            ("tripod", "Photo"),
            ("beans", "Coffee"),
            ("mug", "Coffee"),
            ("lens", "Photo"),
            ("filter", "Photo"),
            ("poster", "Decor"),
        ]
    }
    for i in range(5):
        buy(f"a{i}", f"c{i}", p["camera"], p["card"])
    for i in range(3):
        buy(f"b{i}", f"d{i}", p["camera"], p["bag"])
    for i in range(3):
        buy(f"t{i}", f"e{i}", p["camera"], p["tripod"], p["card"])
    for i in range(4):
        buy(f"k{i}", f"f{i}", p["beans"], p["mug"])
    return p
