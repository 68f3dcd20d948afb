"""Celery tasks: ids in, one service call out. The schedule belongs to the project."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(
    name="crosssell.rebuild",
    bind=True,
    acks_late=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    max_retries=3,
)
def rebuild(self: Any, trigger: str = "schedule") -> int:
    """Recompute and publish every product's recommendations; returns the new build's id."""
    from crosssell.services.build import rebuild as run

    return run(trigger=trigger, task_id=self.request.id or "").pk


@shared_task(name="crosssell.process_pending", acks_late=True)
def process_pending() -> int:
    """Apply the pending incremental updates (a checkout's products)."""
    from crosssell.services.incremental import process_pending as run

    return run()
