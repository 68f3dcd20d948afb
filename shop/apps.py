"""App configuration of the sample shop."""

from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    """The sample shop."""

    name = "shop"

    def ready(self) -> None:
        from shop import receivers  # noqa: F401  (connects them)
