"""The swapped shop's product admin, with crosssell's recommendations panel."""

from django.contrib import admin

from crosssell.admin import CrosssellProductAdminMixin
from tests.swapshop.models import Item


@admin.register(Item)
class ItemAdmin(CrosssellProductAdminMixin, admin.ModelAdmin):
    """Items with their recommendations; the search feeds crosssell's autocomplete."""

    search_fields = ["title", "code"]
