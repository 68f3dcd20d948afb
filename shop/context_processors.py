"""Template context of every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def cart(request: HttpRequest) -> dict[str, Any]:
    from shop.cart import Cart

    return {"cart": Cart(request)}
