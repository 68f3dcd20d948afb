"""Helpers of the tests that use ``swapshop.Item`` (tests/settings_swapped.py): a product-field
mapping through multi-valued relations, and an item with stock records and categories."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings

SWAPPED = getattr(settings, "CROSSSELL_PRODUCT_MODEL", "") == "swapshop.Item"

MULTI_FIELDS = {
    "key": "code",
    "name": "title",
    "text": "blurb",
    "category": "categories__name",
    "price": "stockrecords__price",
    "active": "listed",
    "stock": "stockrecords__num_in_stock",
    "parent": None,
    "image": None,
}


def item(code: str, *, listed: bool = True, offers: Any = (), categories: Any = ()) -> Any:
    """An item with stock records ``(price, num_in_stock)`` and categories (in this order)."""
    from tests.swapshop.models import Category, Item

    item = Item.objects.create(code=code, title=f"Item {code}", amount=Decimal("1"), listed=listed)
    for n, (price, stock) in enumerate(offers):
        item.stockrecords.create(partner=f"p{n}", price=price, num_in_stock=stock)
    for name in categories:
        category, _ = Category.objects.get_or_create(name=name)
        category.items.add(item)
    return item
