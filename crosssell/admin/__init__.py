"""The merchant's admin: review, curate and understand the recommendations.

Registers the recommendations, builds (with the overview page), exclusions and experiments
(with their report); the product admin only for the default ``crosssell.Product``. A shop with
its own product model adds :class:`CrosssellProductAdminMixin` to its product admin (see
``crosssell.admin.products``).
"""

from __future__ import annotations

from django.contrib import admin
from django.db import models

from crosssell.admin.builds import BuildAdmin
from crosssell.admin.common import RefusedInputMixin
from crosssell.admin.exclusions import ExclusionAdmin
from crosssell.admin.experiments import ExperimentAdmin
from crosssell.admin.products import CrosssellProductAdminMixin, CuratedInline
from crosssell.admin.recommendations import RecommendationAdmin
from crosssell.conf import get_product_model_string
from crosssell.models import Product

if get_product_model_string() == "crosssell.Product":

    @admin.register(Product)
    class ProductAdmin(RefusedInputMixin, CrosssellProductAdminMixin, admin.ModelAdmin):
        """The default product model, with its recommendations panel."""

        list_display = ["name", "sku", "category", "price", "stock", "is_active"]
        list_filter = ["is_active", "category"]
        search_fields = ["name", "sku"]
        list_editable = ["is_active"]
        raw_id_fields = ["parent"]
        list_per_page = 50
        formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


__all__ = [
    "BuildAdmin",
    "CrosssellProductAdminMixin",
    "CuratedInline",
    "ExclusionAdmin",
    "ExperimentAdmin",
    "RecommendationAdmin",
]
