"""Filters for crosssell's admin templates, so a project needs no ``django.contrib.humanize``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.utils.formats import number_format

register = template.Library()


@register.filter
def thousands(value: Any) -> Any:
    """A count with the locale's thousands separator (``12345`` -> ``12,345`` in English).

    Like humanize's ``intcomma``: a number given as text is read first, and what is not a
    number (``"-"``, ``None``) is shown as it is.
    """
    if isinstance(value, bool) or value is None:
        return value
    if not isinstance(value, int | float | Decimal):
        try:
            value = int(str(value))
        except ValueError:
            return value
    return number_format(value, force_grouping=True)
