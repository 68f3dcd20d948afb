"""Storefront forms."""

from __future__ import annotations

from typing import Any

from django import forms

from crosssell.services.ids import MAX_ID, parse_id
from shop.cart import MAX_QUANTITY


class CartAddForm(forms.Form):
    """One or more products and a quantity (``product_id`` may repeat)."""

    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, required=False)

    def __init__(self, data: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(data, *args, **kwargs)
        self.product_ids: list[int] = []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        raw = self.data.getlist("product_id") if hasattr(self.data, "getlist") else []
        if not raw:
            raise forms.ValidationError("Choose at least one product.")
        ids: list[int] = []
        for value in raw:
            # ASCII digits up to the largest id the database stores: 20 digits would overflow
            # the query, 5000 would make int() itself refuse.
            pid = parse_id(value.strip() if isinstance(value, str) else value)
            if pid is None:
                raise forms.ValidationError(f"{str(value)[:30]!r} is not a product.")
            if pid not in ids:
                ids.append(pid)
        self.product_ids = ids
        if cleaned.get("quantity") is None and not self.errors:
            cleaned["quantity"] = 1
        return cleaned


class CartUpdateForm(forms.Form):
    """A new quantity for one product of the cart (0 removes it)."""

    product_id = forms.IntegerField(min_value=1, max_value=MAX_ID)
    quantity = forms.IntegerField(min_value=0, max_value=MAX_QUANTITY)


class CheckoutForm(forms.Form):
    """Who the order is for."""

    name = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"autocomplete": "name"}))
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
