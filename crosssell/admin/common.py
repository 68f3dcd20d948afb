"""Small pieces the crosssell admin pages share: product labels, thumbnails, history entries."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import Model
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe

from crosssell.models import Recommendation, get_product_model
from crosssell.services.products import read

PERCENT_KEYS = ("confidence",)


def product_name(product: Model | None) -> str:
    """The mapped name of a product (its ``str`` when the model maps none)."""
    if product is None:
        return "-"
    return str(read(product, "name", str(product)))


def product_key(product: Model | None) -> str:
    """The shop's identifier of a product (SKU), or ""."""
    return str(read(product, "key", "") or "") if product is not None else ""


def product_admin_url(product: Model) -> str:
    """The product's change page in this admin, or "" when its model is not registered."""
    opts = product._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[product.pk])
    except NoReverseMatch:
        return ""


def thumb(product: Model | None, size: int = 30) -> SafeString:
    """The product's image (``CROSSSELL_PRODUCT_FIELDS["image"]``) or a coloured initial."""
    if product is None:
        return mark_safe("")
    image = str(read(product, "image", "") or "")
    name = product_name(product)
    if image:
        return format_html(
            '<img class="cs-thumb" src="{}" alt="" width="{}" height="{}" loading="lazy">',
            image,
            size,
            size,
        )
    hue = zlib.crc32(name.encode()) % 360
    return format_html(
        '<span class="cs-thumb cs-thumb-empty" style="--cs-hue:{}" aria-hidden="true">{}</span>',
        hue,
        name[:1].upper(),
    )


def product_label(product: Model | None, *, link: bool = True) -> SafeString:
    """Thumbnail, name and SKU of a product, linked to its admin page when there is one."""
    if product is None:
        return mark_safe("-")
    url = product_admin_url(product) if link else ""
    key = product_key(product)
    name = (
        format_html('<a class="cs-name" href="{}">{}</a>', url, product_name(product))
        if url
        else format_html('<span class="cs-name">{}</span>', product_name(product))
    )
    return format_html(
        '<span class="cs-product">{}<span class="cs-product-text">{}{}</span></span>',
        thumb(product),
        name,
        format_html('<small class="cs-sku">{}</small>', key) if key else "",
    )


def evidence_value(rec: Recommendation, key: str) -> str:
    """One evidence number, formatted for a column ("-" when the row has none)."""
    value = (rec.evidence or {}).get(key)
    if value is None or isinstance(value, bool):
        return "-"
    if isinstance(value, float):
        if key in PERCENT_KEYS:
            return f"{100 * value:.1f}%"
        return f"{value:.2f}"
    return str(value)


def log_change(
    request: HttpRequest, objs: Iterable[Model], message: str, flag: int = CHANGE
) -> None:
    """Record one admin history entry per object (``LogEntry``), like the admin's own edits."""
    objs = list(objs)
    if objs and request.user.pk is not None:
        LogEntry.objects.log_actions(
            user_id=request.user.pk, queryset=objs, action_flag=flag, change_message=message
        )


def safe_next(request: HttpRequest, default: str) -> str:
    """The ``next`` parameter when it points into this site, else ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def product_search_fields() -> list[str]:
    """Search lookups for the product model: its mapped name and key fields."""
    from crosssell.models import product_field

    return [f for f in (product_field("name"), product_field("key")) if f]


def product_model_registered(site: Any) -> bool:
    """Whether the admin site has a product admin that autocomplete can search."""
    model_admin = site._registry.get(get_product_model())
    return bool(model_admin is not None and model_admin.get_search_fields(None))
