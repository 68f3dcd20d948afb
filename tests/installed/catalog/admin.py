"""The shop's product admin, with crosssell's recommendations panel."""

from django.contrib import admin

from catalog.models import Category, Product
from crosssell.admin import CrosssellProductAdminMixin


@admin.register(Product)
class ProductAdmin(CrosssellProductAdminMixin, admin.ModelAdmin):
    """Products with their recommendations; the search feeds crosssell's autocomplete."""

    search_fields = ["title", "sku"]


admin.site.register(Category)
