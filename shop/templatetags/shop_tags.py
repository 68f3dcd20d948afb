"""Small presentation helpers of the sample shop."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.template.defaultfilters import floatformat

register = template.Library()


@register.filter
def money(value: Decimal | float | int | None) -> str:
    """``1234.5`` -> ``$1,234.50``."""
    if value is None:
        return ""
    return f"${floatformat(value, '2g')}"


@register.filter
def leaf(category: str) -> str:
    """``"Photo > Cameras"`` -> ``"Cameras"``."""
    return (category or "").rsplit(" > ", 1)[-1]


@register.simple_tag(takes_context=True)
def page_url(context: dict[str, Any], page: int) -> str:
    """The current catalog URL at another page."""
    qs = context.get("querystring", "")
    return f"?{qs + '&' if qs else ''}page={page}"
