"""App configuration."""

from __future__ import annotations

from django.apps import AppConfig


class CrosssellConfig(AppConfig):
    """The crosssell app."""

    name = "crosssell"
    verbose_name = "Cross-sell recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crosssell import checks, conf, signals  # noqa: F401  (registers the checks)

        signals.connect()
