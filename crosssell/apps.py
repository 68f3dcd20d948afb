"""App configuration."""

from __future__ import annotations

from django.apps import AppConfig


class CrosssellConfig(AppConfig):
    """The crosssell app."""

    name = "crosssell"
    verbose_name = "Cross-sell recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crosssell import checks, conf, signals, tasks  # noqa: F401  (registers the checks)
        from crosssell.services import incremental

        signals.connect()
        # A checkout's update task goes out through Celery; the service knows only this hook.
        incremental.set_sender(tasks.queue_process_pending)
        use_own_celery_app_unless_the_project_has_one()


def use_own_celery_app_unless_the_project_has_one() -> None:
    """Make ``crosssell.celery_app`` the current and default Celery app when the project created
    none (Celery's fallback app is current): crosssell's ``shared_task``s are then sent with it,
    from every thread. A project's own app (its ``celery.py``, loaded with its settings) stays."""
    from celery import current_app

    from crosssell.tasks import is_fallback_app

    if is_fallback_app(current_app._get_current_object()):
        from crosssell.celery_app import app

        app.set_default()  # every thread's app
        app.set_current()  # this thread's, which Celery looks at first
