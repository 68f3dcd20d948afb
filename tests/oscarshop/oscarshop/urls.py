"""URLs as Oscar's documentation writes them, plus crosssell's three includes."""

from django.apps import apps
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # crosssell
    path("api/crosssell/", include("crosssell.api.urls")),
    path("crosssell/", include("crosssell.urls")),
    path("crosssell/oscar/", include("crosssell.contrib.oscar.urls")),
    path("", include(apps.get_app_config("oscar").urls[0])),
]
