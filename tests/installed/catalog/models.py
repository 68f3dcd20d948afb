"""A shop's product with a category foreign key and its own field names."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class Category(models.Model):
    """A flat category."""

    name = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """The shop's product."""

    sku = models.CharField(max_length=40, unique=True)
    title = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL)
    price = models.DecimalField(max_digits=9, decimal_places=2, default=Decimal("0"))
    is_public = models.BooleanField(default=True)
    num_in_stock = models.IntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return f"/products/{self.sku}/"
