"""The sample shop's orders in the admin."""

from __future__ import annotations

from django.contrib import admin

from crosssell.admin.common import ParentConstraintsFormSet
from shop.models import Order, OrderLine


class OrderLineInline(admin.TabularInline):
    """The lines of an order."""

    model = OrderLine
    formset = ParentConstraintsFormSet  # a repeated product is a form error, not a 500
    extra = 0
    raw_id_fields = ["product"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Placed orders."""

    list_display = ["number", "created_at", "name", "email", "user", "total"]
    list_filter = ["created_at"]
    search_fields = ["number", "name", "email"]
    date_hierarchy = "created_at"
    raw_id_fields = ["user"]
    inlines = [OrderLineInline]
    list_select_related = ["user"]
