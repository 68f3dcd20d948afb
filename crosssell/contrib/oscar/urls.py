"""``path("crosssell/oscar/", include("crosssell.contrib.oscar.urls"))``."""

from __future__ import annotations

from django.urls import path

from crosssell.contrib.oscar import views

app_name = "crosssell-oscar"

urlpatterns = [
    path("basket/add/", views.add_to_basket, name="basket-add"),
]
