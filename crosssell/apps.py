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
