"""crosssell's own Celery app, for a project that has none (no ``celery.py`` of its own).

It is Celery's example app for Django: it reads the ``CELERY_*`` settings and finds the tasks
of every installed app. Run its worker and beat with the project's settings in the environment::

    DJANGO_SETTINGS_MODULE=yourproject.settings celery -A crosssell.celery_app worker
    DJANGO_SETTINGS_MODULE=yourproject.settings celery -A crosssell.celery_app beat

In the web process, ``CrosssellConfig.ready()`` makes this app the current and default one when
the project created no Celery app of its own, so crosssell's ``shared_task``s are sent with it.
A project that has its own app keeps it: then this module is never imported.

It is not made current when imported: importing it (the ``celery`` command does) must not take
the place of a project's own app.
"""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if not os.environ.get("DJANGO_SETTINGS_MODULE") and not settings.configured:
    # Celery's Django fix-up (django.setup() in the worker, database connections closed
    # between tasks) is only installed when this variable names the settings.
    raise ImproperlyConfigured(
        "crosssell.celery_app needs the project's settings: set DJANGO_SETTINGS_MODULE, e.g. "
        "DJANGO_SETTINGS_MODULE=yourproject.settings celery -A crosssell.celery_app worker"
    )

app = Celery("crosssell", set_as_current=False)
app.config_from_object("django.conf:settings", namespace="CELERY")  # the CELERY_* settings
app.autodiscover_tasks()  # crosssell.tasks, and the tasks of the project's other apps

__all__ = ["app"]
