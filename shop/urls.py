"""URLs of the sample shop."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from shop.api import ProductView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/crosssell/", include("crosssell.api.urls")),
    path("api/shop/products/<int:pk>/", ProductView.as_view(), name="shop-api-product"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("crosssell/", include("crosssell.urls")),
    path("", include("shop.storefront_urls")),
]
