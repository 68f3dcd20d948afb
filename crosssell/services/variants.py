"""Builds of experiment variants: a variant naming a strategy is served from a build of its own.

An experiment compares whole lists, not slots filtered out of one blend: each variant with a
strategy gets the normal rebuild pipeline run with that strategy, under the same rebuild lock,
and the finished build stays ready (never live) with ``Variant.build`` pointing to it. Serving
reads it with ``recommend(..., build_id=variant.build_id)``. A holdout (no widget) and a variant
without a strategy (the live blend) need no build.

The variants' builds follow the nightly rebuild (``crosssell.rebuild_variants``, queued after
each publish), so they are computed on the same orders as the live build. They get no
incremental updates between rebuilds; the live build does.
"""

from __future__ import annotations

import logging

from django.db.models import QuerySet

from crosssell.models import Build, Variant
from crosssell.services import cache as cs_cache
from crosssell.services.build import prune_builds, rebuild
from crosssell.services.locks import CacheLock, rebuild_lock
from crosssell.services.rows_writer import ProgressFn

logger = logging.getLogger(__name__)


def strategy_variants() -> QuerySet[Variant]:
    """The variants of active experiments that need a build: not holdouts, with a strategy."""
    return (
        Variant.objects.filter(experiment__is_active=True, holdout=False)
        .exclude(strategy="")
        .select_related("experiment")
        .order_by("experiment_id", "pk")
    )


def needs_variant_builds(build_id: int) -> bool:
    """Whether the variants' builds should follow build ``build_id``: it went live and an active
    experiment has variants with a strategy."""
    return (
        Build.objects.filter(pk=build_id, state=Build.State.LIVE).exists()
        and strategy_variants().exists()
    )


def build_variant(
    variant: Variant,
    *,
    progress: ProgressFn | None = None,
    task_id: str = "",
    wait: float | None = None,
    lock: CacheLock | None = None,
) -> Build:
    """Compute ``variant``'s own build with its strategy and point the variant to it.

    The build is the rebuild pipeline's (privacy threshold, exclusions, the merchant's pins and
    rejections copied on), records its variant (``Build.variant``) and is left ready: the live
    build and everyone else's lists are untouched. The variant's previous build is kept until
    a later prune, so a process still reading it from the cache generation before this one
    never finds it gone.

    Parameters
    ----------
    variant
        A variant with a strategy (registry name or dotted path), not a holdout.
    progress
        ``progress(stage, fraction, rows)``, as for :func:`crosssell.services.build.rebuild`.
    task_id
        The Celery task computing it, recorded on the build.
    wait
        Seconds to wait for a running rebuild (default ``CROSSSELL_LOCK_WAIT``).
    lock
        The rebuild lock when the caller already holds it; taken here otherwise.

    Returns
    -------
    Build
        The new ready build, now ``variant.build``.

    Raises
    ------
    ValueError
        The variant is a holdout or names no strategy.
    crosssell.services.locks.LockTimeout
        Another rebuild kept the lock beyond ``wait``.
    """
    strategy = variant.strategy.strip()
    if variant.holdout or not strategy:
        raise ValueError(f"Variant {variant} shows no list of its own: it needs no build.")
    if lock is None:
        with rebuild_lock(wait) as held:
            return build_variant(variant, progress=progress, task_id=task_id, lock=held)
    # Builds superseded in earlier runs go now, before this one supersedes another.
    prune_builds()
    build = rebuild(
        trigger=Build.VARIANT_TRIGGER,
        strategy=strategy,
        progress=progress,
        task_id=task_id,
        publish=False,
        variant=variant,
        lock=lock,
    )
    Variant.objects.filter(pk=variant.pk).update(build=build)
    variant.build = build
    # The cached experiments hold their variants, and with them the build each one serves.
    cs_cache.bump_on_commit()
    logger.info("crosssell variant %s now served by build #%s", variant, build.pk)
    return build


def build_active_variants(
    progress: ProgressFn | None = None, *, task_id: str = "", wait: float | None = None
) -> list[Build]:
    """:func:`build_variant` for every variant with a strategy of every active experiment.

    The rebuild lock is held across all of them, so no rebuild runs in between. The first
    failure stops the run and propagates: that variant keeps its previous build, its failed
    build records the error, and the variants built before it keep their new builds. Progress
    stages are prefixed with the experiment's and the variant's names.
    """
    variants = list(strategy_variants())
    if not variants:
        return []
    builds: list[Build] = []
    with rebuild_lock(wait) as lock:
        for variant in variants:
            builds.append(
                build_variant(
                    variant, progress=_labelled(progress, variant), task_id=task_id, lock=lock
                )
            )
    return builds


def _labelled(progress: ProgressFn | None, variant: Variant) -> ProgressFn | None:
    if progress is None:
        return None
    label = f"{variant.experiment.name}/{variant.name}"

    def report(stage: str, fraction: float, rows: int) -> None:
        progress(f"{label}: {stage}", fraction, rows)

    return report


__all__ = ["build_active_variants", "build_variant", "needs_variant_builds", "strategy_variants"]
