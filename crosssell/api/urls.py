"""API routes, included by the project under ``api/crosssell/`` with namespace ``crosssell-api``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path

from crosssell.api import views

app_name = "crosssell-api"

urlpatterns: list[URLPattern | URLResolver] = [
    # Any segment, not <int:...>: a malformed id then gets the API's JSON 404, not an HTML page.
    re_path(
        r"^products/(?P<product_id>[^/]+)/frequently-bought-together/$",
        views.FrequentlyBoughtTogetherView.as_view(),
        name="frequently-bought-together",
    ),
    path("cart/recommendations/", views.CartRecommendationsView.as_view(), name="cart"),
    path("me/recommendations/", views.MyRecommendationsView.as_view(), name="me"),
    path("events/", views.EventsView.as_view(), name="events"),
]
