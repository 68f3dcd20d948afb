"""API routes, included by the project under ``api/crosssell/`` with namespace ``crosssell-api``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

app_name = "crosssell-api"

urlpatterns: list[URLPattern | URLResolver] = []
