"""A django-oscar shop built as Oscar's "Building your own shop" builds one, plus crosssell."""

from oscarshop.celery import app as celery_app

__all__ = ["celery_app"]
