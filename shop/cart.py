"""The session cart: product ids and quantities in the session, products loaded on demand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.http import HttpRequest

from crosssell.models import Product

SESSION_KEY = "cart"
MAX_QUANTITY = 99
MAX_LINES = 100


@dataclass(frozen=True)
class CartLine:
    """One product of the cart, with its quantity."""

    product: Product
    quantity: int

    @property
    def subtotal(self) -> Decimal:
        return self.product.price * self.quantity


class Cart:
    """The visitor's cart; reading its size or ids costs no query (only the session)."""

    def __init__(self, request: HttpRequest) -> None:
        # A request without a session (a bare RequestFactory request) has an empty cart.
        self.session: Any = getattr(request, "session", None)
        if self.session is None:
            self.session = {}
        raw = self.session.get(SESSION_KEY) or {}
        # The session is client-influenced storage: keep only well-formed entries.
        self._items: dict[str, int] = {
            str(k): int(v)
            for k, v in raw.items()
            if str(k).isdigit() and isinstance(v, int) and 0 < v <= MAX_QUANTITY
        }
        self._lines: list[CartLine] | None = None

    def _save(self) -> None:
        self.session[SESSION_KEY] = self._items
        if hasattr(self.session, "modified"):
            self.session.modified = True
        self._lines = None

    def add(self, product_id: int, quantity: int = 1) -> None:
        """Add ``quantity`` units (capped at ``MAX_QUANTITY`` per product)."""
        key = str(product_id)
        if key not in self._items and len(self._items) >= MAX_LINES:
            raise ValueError(f"A cart holds at most {MAX_LINES} different products.")
        self._items[key] = min(self._items.get(key, 0) + quantity, MAX_QUANTITY)
        self._save()

    def set(self, product_id: int, quantity: int) -> None:
        """Set the quantity of a product; zero removes it."""
        if quantity <= 0:
            self.remove(product_id)
            return
        self._items[str(product_id)] = min(quantity, MAX_QUANTITY)
        self._save()

    def remove(self, product_id: int) -> None:
        self._items.pop(str(product_id), None)
        self._save()

    def clear(self) -> None:
        self._items = {}
        self._save()

    @property
    def product_ids(self) -> list[int]:
        return [int(k) for k in self._items]

    def quantity_of(self, product_id: int) -> int:
        return self._items.get(str(product_id), 0)

    def __len__(self) -> int:
        """The number of units in the cart."""
        return sum(self._items.values())

    def __bool__(self) -> bool:
        return bool(self._items)

    def lines(self) -> list[CartLine]:
        """The cart's lines in the order they were added (one query, then cached)."""
        if self._lines is None:
            products = Product.objects.in_bulk(self.product_ids)
            self._lines = [
                CartLine(products[int(k)], q) for k, q in self._items.items() if int(k) in products
            ]
        return self._lines

    def __iter__(self) -> Iterator[CartLine]:
        return iter(self.lines())

    @property
    def total(self) -> Decimal:
        return sum((line.subtotal for line in self.lines()), Decimal("0"))
