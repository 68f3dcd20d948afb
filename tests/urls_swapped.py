from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/crosssell/", include("crosssell.api.urls")),
    path("crosssell/", include("crosssell.urls")),
]
