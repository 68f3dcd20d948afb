"""The project's one Celery app, as the README's "Celery" step shows."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "minimalshop.settings")
app = Celery("minimalshop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
