"""``{% load crosssell_oscar %}``: Oscar's basket for crosssell's cart widget.

``{% cart_recommendations request.basket|basket_product_ids %}``
"""

from __future__ import annotations

from typing import Any

from django import template

from crosssell.contrib.oscar.basket import basket_product_ids as _basket_product_ids

register = template.Library()


@register.filter
def basket_product_ids(basket: Any) -> list[int]:
    """The products of an Oscar basket (children as their parents)."""
    return _basket_product_ids(basket)
