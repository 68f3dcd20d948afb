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
