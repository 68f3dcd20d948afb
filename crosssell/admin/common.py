"""Small pieces the crosssell admin pages share: product labels, thumbnails, history entries."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.forms.models import BaseInlineFormSet
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
    """Search lookups for the product model: its name and key fields, as the catalog says."""
    from crosssell.services.catalog import get_catalog

    return get_catalog().search_fields()


def product_model_registered(site: Any) -> bool:
    """Whether the admin site has a product admin that autocomplete can search."""
    model_admin = site._registry.get(get_product_model())
    return bool(model_admin is not None and model_admin.get_search_fields(None))


class SafeAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete select, minus its 500 when a refused form is shown again with a
    submitted value that is not a key at all (``1e5``, 5000 digits): such a value selects
    nothing instead of reaching the query."""

    def optgroups(self, name: str, value: Any, attr: Any = None) -> Any:
        pk = self.field.remote_field.model._meta.pk
        kept = []
        for v in value:
            try:
                pk.to_python(v)
            except (ValidationError, ValueError, TypeError):
                continue
            kept.append(v)
        return super().optgroups(name, kept, attr)


class RefusedInputMixin:
    """A change form posted with values it refuses (a 20-digit number, letters for an id) is
    shown again with its errors, as Django's admin does, but answered 400: the request's data
    was refused, which a client, a log or a proxy can tell from a page that was saved."""

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        response = super().render_change_form(  # type: ignore[misc]
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )
        if request.method == "POST" and context.get("errors"):
            response.status_code = 400
        return response


class SafeAutocompleteMixin:
    """Uses :class:`SafeAutocompleteSelect` for a ``ModelAdmin``'s autocomplete fields."""

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        autocomplete = self.get_autocomplete_fields(request)  # type: ignore[attr-defined]
        if "widget" not in kwargs and db_field.name in autocomplete:
            kwargs["widget"] = SafeAutocompleteSelect(
                db_field,
                self.admin_site,  # type: ignore[attr-defined]
                using=kwargs.get("using"),
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


class ParentConstraintsFormSet(BaseInlineFormSet):
    """An inline formset that checks the model's constraints on the parent's key too.

    Django leaves the foreign key to the parent out of each inline form's constraint check, so a
    row that repeats a stored one (a tampered ``INITIAL_FORMS`` re-posts a stored row as new)
    reaches the database's unique constraint: a 500 instead of a form error.
    """

    def clean(self) -> None:
        super().clean()
        for form in self.forms:
            deleted = self.can_delete and form.cleaned_data.get("DELETE")
            if not form.has_changed() or deleted or form.errors:
                continue
            model_fields = {f.name for f in form.instance._meta.fields}
            exclude = {name for name in model_fields if name not in form.fields}
            exclude.discard(self.fk.name)
            try:
                form.instance.validate_constraints(exclude=exclude)
            except ValidationError as exc:
                form.add_error(None, exc)
