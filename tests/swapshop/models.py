"""A shop that has its own product model, with other field names than crosssell's."""

from __future__ import annotations

from django.db import models


class Item(models.Model):
    """The shop's product: crosssell reads it through CROSSSELL_PRODUCT_FIELDS."""

    code = models.CharField(max_length=40, unique=True)
    title = models.CharField(max_length=150)
    blurb = models.TextField(blank=True)
    department = models.CharField(max_length=100, blank=True)
    amount = models.DecimalField(max_digits=9, decimal_places=2)
    listed = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return f"/items/{self.code}/"


class Category(models.Model):
    """A category of the shop's tree; an item may be in several (a many-to-many)."""

    name = models.CharField(max_length=100)
    items = models.ManyToManyField(Item, related_name="categories", blank=True)

    def __str__(self) -> str:
        return self.name


class StockRecord(models.Model):
    """One supplier's offer of an item: several per item, each with its price and stock."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="stockrecords")
    partner = models.CharField(max_length=50)
    price = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    num_in_stock = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.partner}: {self.item_id}"
