"""Oscar's basket: the products in it, and adding a widget's bundle to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from oscar.core.loading import get_model

from crosssell.contrib.oscar.orders import browsable_ids

MAX_BUNDLE = 50


def basket_product_ids(basket: Any) -> list[int]:
    """The products shown for the basket's lines (a child's parent), for the cart widget: what
    it recommends leaves these out."""
    if basket is None or not getattr(basket, "id", None):
        return []
    ids = [int(line.product_id) for line in basket.all_lines() if line.product_id]
    shown = browsable_ids(ids)
    return sorted({shown.get(i, i) for i in ids})


@dataclass
class BundleResult:
    """What happened to each product of a bundle."""

    added: list[Any] = field(default_factory=list)
    refused: list[tuple[Any, str]] = field(default_factory=list)


def add_bundle(request: Any, product_ids: Sequence[int], quantity: int = 1) -> BundleResult:
    """Add each product to the request's Oscar basket, as Oscar's add-to-basket form would: the
    request's strategy must find it available, and the basket must allow the quantity.

    A parent product cannot go into a basket (the customer chooses a child: a size, a colour),
    so it is refused with that reason, unless exactly one of its children is available.
    """
    product_model = get_model("catalogue", "Product")
    wanted = list(dict.fromkeys(int(p) for p in product_ids))[:MAX_BUNDLE]
    products = product_model._default_manager.in_bulk(wanted)
    basket = request.basket
    result = BundleResult()
    for pid in wanted:
        product = products.get(pid)
        if product is None:
            continue
        if product.is_parent:
            available = [
                child
                for child in product.children.filter(is_public=True).order_by("pk")
                if request.strategy.fetch_for_product(child).availability.is_available_to_buy
            ]
            if len(available) != 1:
                result.refused.append((product, "choose an option on its page"))
                continue
            product = available[0]
        info = request.strategy.fetch_for_product(product)
        allowed, reason = info.availability.is_purchase_permitted(quantity)
        if not product.is_public or not info.price.exists or not allowed:
            result.refused.append((product, str(reason or "not available")))
            continue
        allowed, reason = basket.is_quantity_allowed(quantity)
        if not allowed:
            result.refused.append((product, str(reason)))
            break
        basket.add_product(product, quantity)
        result.added.append(product)
    if result.added:
        basket.reset_offer_applications()
    return result
