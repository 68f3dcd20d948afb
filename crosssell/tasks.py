"""Celery tasks: ids in, one service call out. The schedule belongs to the project.

Every task is idempotent and acknowledged late, so a task whose worker was killed is run again
by another worker without duplicates.
"""

from __future__ import annotations

from typing import Any

from celery import chord, shared_task
from django.db import DatabaseError, InterfaceError
from kombu.utils.url import maybe_sanitize_url

RETRY_ON = (ConnectionError, TimeoutError, DatabaseError, InterfaceError)


@shared_task(
    name="crosssell.rebuild",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=6 * 3600,
)
def rebuild(self: Any, trigger: str = "schedule", strategy: str | None = None) -> int:
    """Recompute and publish every product's recommendations; returns the build's id. Once it
    is live, the experiment variants' own builds follow (``rebuild_variants``)."""
    from crosssell.services.distributed import LockBusy, start_rebuild

    try:
        build_id = start_rebuild(
            trigger, self.request.id or "", strategy, launch=launch_rebuild_chord
        )
    except LockBusy as exc:
        # Another rebuild runs: come back later rather than block a worker slot.
        raise self.retry(exc=exc, countdown=5, max_retries=720) from exc
    except RETRY_ON as exc:
        raise self.retry(exc=exc, countdown=min(600, 10 * 2**self.request.retries)) from exc
    _then_variants(build_id)  # a chord's build is still running: finish_rebuild does it
    return build_id


@shared_task(
    name="crosssell.rebuild_variants",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=6 * 3600,
)
def rebuild_variants(self: Any) -> list[int]:
    """Recompute the own build of every variant with a strategy of the active experiments
    (left ready, never live); returns the builds' ids."""
    from crosssell.services.locks import LockTimeout
    from crosssell.services.variants import build_active_variants

    try:
        return [b.pk for b in build_active_variants(task_id=self.request.id or "", wait=0)]
    except LockTimeout as exc:
        raise self.retry(exc=exc, countdown=5, max_retries=720) from exc
    except RETRY_ON as exc:
        raise self.retry(exc=exc, countdown=min(600, 10 * 2**self.request.retries)) from exc


def _then_variants(build_id: int) -> None:
    """Queue ``rebuild_variants`` when build ``build_id`` went live and variants need builds."""
    from crosssell.services.variants import needs_variant_builds

    if needs_variant_builds(build_id):
        rebuild_variants.delay()


@shared_task(
    name="crosssell.rebuild_shard",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=RETRY_ON,
    retry_backoff=True,
    max_retries=5,
)
def rebuild_shard(build_id: int, start: int, stop: int, strategy: str | None = None) -> int:
    """Rank and write one range of products of a chord rebuild."""
    from crosssell.services.distributed import rank_shard

    return rank_shard(build_id, start, stop, strategy)


@shared_task(name="crosssell.finish_rebuild", acks_late=True, reject_on_worker_lost=True)
def finish_rebuild(results: list[int], build_id: int) -> int:
    """Publish a chord rebuild once every shard is written; the variants' builds follow."""
    from crosssell.services.distributed import finish

    published = finish(results, build_id)
    _then_variants(published)
    return published


@shared_task(name="crosssell.rebuild_failed")
def rebuild_failed(build_id: int) -> None:
    """Mark a chord rebuild failed when one of its shards failed."""
    from crosssell.services.distributed import failed

    failed(build_id)


def launch_rebuild_chord(
    build_id: int, ranges: list[tuple[int, int]], strategy: str | None
) -> None:
    """Send build ``build_id``'s chord: one ``rebuild_shard`` per product range, then
    ``finish_rebuild``, or ``rebuild_failed`` when a shard fails (``rebuild`` passes this to
    the distributed service, which calls it once the build's row is committed)."""
    header = [rebuild_shard.s(build_id, a, b, strategy) for a, b in ranges]
    chord(header)(finish_rebuild.s(build_id).on_error(rebuild_failed.si(build_id)))


@shared_task(
    name="crosssell.process_pending",
    acks_late=True,
    autoretry_for=RETRY_ON,
    retry_backoff=True,
    max_retries=5,
)
def process_pending() -> int:
    """Apply the pending incremental updates (a checkout's products)."""
    from crosssell.services.incremental import process_pending as run

    return run()


def queue_process_pending(countdown: float) -> None:
    """Queue ``process_pending`` to run in ``countdown`` seconds (``crosssell.apps`` registers
    this as the incremental service's sender).

    A checkout calls it after its commit, so with the broker down it gives up after one
    connection attempt (bounded by the broker's connect timeout) instead of kombu's retries,
    which sleep 2 s between attempts; it raises ``BrokerUnavailable`` and the order's products
    stay pending. Without a broker configured (no ``CELERY_BROKER_URL``) nothing is sent:
    Celery would publish to its default ``amqp://guest@localhost//``, where no worker of this
    project listens (``crosssell.W050``, ``crosssell.W051``); nor with Celery's fallback app,
    which reads no settings (``crosssell.apps`` replaces it with ``crosssell.celery_app``).
    """
    from crosssell.services.incremental import BrokerUnavailable

    app = process_pending.app
    if app.conf.task_always_eager:
        process_pending.apply_async(countdown=countdown, ignore_result=True)  # runs right here
        return
    if is_fallback_app(app):
        raise BrokerUnavailable("no Celery app: Celery's fallback app reads no settings")
    if not app.conf.broker_url:
        raise BrokerUnavailable(
            f"the Celery app {app.main!r} has no broker configured: set CELERY_BROKER_URL"
        )
    try:
        with app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=0)
            # ignore_result: nothing reads it, and with a Redis result backend that is down,
            # subscribing to the result would retry for about 20 s inside the checkout's request.
            process_pending.apply_async(
                countdown=countdown, ignore_result=True, retry=False, producer=producer
            )
    except Exception as exc:
        broker = maybe_sanitize_url(app.conf.broker_url or "amqp://guest@localhost//")
        raise BrokerUnavailable(f"broker {broker}: {type(exc).__name__}: {exc}") from exc


def is_fallback_app(app: Any) -> bool:
    """Whether ``app`` is the app Celery makes up when no app was created: it reads no Django
    settings and no worker runs it (``crosssell.apps`` puts ``crosssell.celery_app`` in its
    place when the project has no ``celery.py``)."""
    return bool(app.main == "default" and not app.fixups)


@shared_task(
    name="crosssell.retrain_model",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=RETRY_ON,
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=6 * 3600,
)
def retrain_model(rebuild_after: bool = True, params: dict[str, Any] | None = None) -> str:
    """Retrain the neural strategy (``params`` override the model's); then rebuild so its
    recommendations are published."""
    from crosssell.services.neural import retrain

    version: str = retrain(**(params or {}))["version"]
    if rebuild_after:
        rebuild.delay(trigger="retrain")
    return version


@shared_task(name="crosssell.flush_events", acks_late=True, autoretry_for=RETRY_ON, max_retries=3)
def flush_events() -> int:
    """Write the queued impressions, clicks and purchases to the database in bulk."""
    from crosssell.services.tracking import flush

    return flush()
