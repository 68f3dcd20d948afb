"""URLs of the sample shop."""

from django.contrib import admin
from django.urls import include, path

from shop import views

app_name = "shop"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", views.catalog, name="catalog"),
    path("", include("crosssell.urls")),
]
