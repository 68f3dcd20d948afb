"""Oscar's product admin with crosssell's recommendations panel, registered for the shop.

Whatever admin class is registered for Oscar's product when this module is imported (Oscar's
own, or the shop's, when the shop's app comes earlier in ``INSTALLED_APPS``) is kept and gets
crosssell's mixin; the page also lists the recommendations that come from Oscar.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from oscar.core.loading import get_model

from crosssell.admin import CrosssellProductAdminMixin
from crosssell.contrib.oscar import pins

Product = get_model("catalogue", "Product")
OSCAR_FIELD = "crosssell_from_oscar"


class OscarPinsMixin:
    """Shows which of crosssell's pins come from Oscar's hand-made recommendations."""

    def get_readonly_fields(self, request: Any, obj: Model | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return [*fields, OSCAR_FIELD] if obj is not None else fields

    @admin.display(description="Pinned from Oscar's recommendations")
    def crosssell_from_oscar(self, obj: Model) -> SafeString:
        rows = pins.oscar_pins(int(obj.pk))
        if not rows:
            return SafeString("none (add them under Product recommendations; they come first)")
        return format_html_join(
            "",
            '<span class="cs-badge cs-status-pinned" data-cs-oscar-pin="{}">{}. {} '
            "(from Oscar)</span> ",
            ((r.target_id, r.rank + 1, r.target) for r in rows),
        )


def register(site: admin.AdminSite = admin.site) -> type[admin.ModelAdmin]:
    """Register Oscar's product admin again, with crosssell's mixin (idempotent)."""
    current = site._registry.get(Product)
    base: type[admin.ModelAdmin] = type(current) if current is not None else admin.ModelAdmin
    if issubclass(base, CrosssellProductAdminMixin):
        return base
    if current is not None:
        site.unregister(Product)
    cls = type(
        f"Crosssell{base.__name__}",
        (OscarPinsMixin, CrosssellProductAdminMixin, base),
        {"__module__": __name__, "search_fields": getattr(base, "search_fields", None)
         or ["upc", "title"]},
    )  # fmt: skip
    site.register(Product, cls)
    return cls


register()
