"""The merchant's exclusions: never recommend this product or category with that one."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.safestring import SafeString

from crosssell.admin.common import (
    RefusedInputMixin,
    SafeAutocompleteMixin,
    product_label,
    product_model_registered,
)
from crosssell.models import Exclusion


@admin.register(Exclusion)
class ExclusionAdmin(RefusedInputMixin, SafeAutocompleteMixin, admin.ModelAdmin):
    """Exclusions, applied both when building and when serving."""

    list_display = ["source_col", "target_col", "symmetric", "note", "created_at"]
    list_filter = ["symmetric"]
    list_select_related = ["source_product", "target_product"]
    raw_id_fields = ["source_product", "target_product"]
    fieldsets = [
        (
            "Products or categories",
            {
                "fields": [
                    ("source_product", "source_category"),
                    ("target_product", "target_category"),
                ],
                "description": "On each side give a product or a category (the category "
                "value exactly as the products carry it).",
            },
        ),
        (None, {"fields": ["symmetric", "note"]}),
    ]

    def get_search_fields(self, request: HttpRequest | None) -> list[str]:
        from crosssell.admin.common import product_search_fields

        names = product_search_fields()
        return [
            "source_category",
            "target_category",
            "note",
            *(f"source_product__{f}" for f in names),
            *(f"target_product__{f}" for f in names),
        ]

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        if product_model_registered(self.admin_site):
            return ["source_product", "target_product"]
        return []

    @admin.display(description="never with", ordering="source_category")
    def source_col(self, obj: Exclusion) -> SafeString | str:
        return (
            product_label(obj.source_product)
            if obj.source_product
            else f"{obj.source_category} (category)"
        )

    @admin.display(description="this", ordering="target_category")
    def target_col(self, obj: Exclusion) -> SafeString | str:
        return (
            product_label(obj.target_product)
            if obj.target_product
            else f"{obj.target_category} (category)"
        )
