"""A django-oscar shop built as Oscar's "Building your own shop" builds one, plus crosssell's
settings, URL includes and template lines: no Python of its own for crosssell (its Celery app
is crosssell's, ``celery -A crosssell.celery_app worker``)."""
