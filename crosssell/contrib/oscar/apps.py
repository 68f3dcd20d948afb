"""App configuration: add ``"crosssell.contrib.oscar.apps.CrosssellOscarConfig"`` to
``INSTALLED_APPS`` after Oscar's apps and ``"crosssell"``."""

from __future__ import annotations

from django.apps import AppConfig


class CrosssellOscarConfig(AppConfig):
    """crosssell inside a django-oscar shop."""

    name = "crosssell.contrib.oscar"
    label = "crosssell_oscar"
    verbose_name = "Cross-sell recommendations for Oscar"

    def ready(self) -> None:
        from crosssell.contrib.oscar import receivers

        receivers.connect()
