"""The full rebuild: extract, fit, rank, write a Build, make it live.

This module orchestrates; the work is elsewhere: the extraction (:mod:`.extract`), the ranking
of every list (:mod:`crosssell.engine.ranking`, through :mod:`.ranking_step`, which a chord's
shards share) and the writing of the rows (:mod:`.rows_writer`). The same pipeline computes an
experiment variant's build (``publish=False``): it stays ready, served only to that variant's
visitors (:mod:`crosssell.services.variants`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.module_loading import import_string

from crosssell.conf import settings
from crosssell.engine.base import ItemRecommender
from crosssell.engine.evidence import MIN_CUSTOMERS_KEY
from crosssell.models import Build, CartVector, Recommendation, Variant
from crosssell.services import cache as cs_cache
from crosssell.services import incremental
from crosssell.services.build_history import VARIANT_ONLY
from crosssell.services.extract import Extracted, extract
from crosssell.services.locks import CacheLock, rebuild_lock
from crosssell.services.ranking_step import rank_and_write
from crosssell.services.rows_writer import ProgressFn
from crosssell.services.tuning import tune_and_measure

logger = logging.getLogger(__name__)


def default_strategy() -> ItemRecommender:
    """The blend the shop serves: ``CROSSSELL_STRATEGIES`` (or the engine's default steps), with
    the stored neural model first for products with few sales when one has been trained."""
    from crosssell.engine.blend import DEFAULT_STEPS, Blend
    from crosssell.engine.wrappers import ColdOnly
    from crosssell.services import neural

    steps: list[Any] = list(settings.STRATEGIES or DEFAULT_STEPS)
    max_sales = settings.NEURAL_MAX_SALES
    if max_sales is not None and neural.current_version() is not None:
        steps.insert(0, ColdOnly(neural.StoredNeural(), max_sales=max_sales))
    return Blend(steps=steps)


def rebuild(
    *,
    trigger: str = "manual",
    strategy: ItemRecommender | str | None = None,
    progress: ProgressFn | None = None,
    task_id: str = "",
    wait: float | None = None,
    publish: bool = True,
    parameters: Mapping[str, Any] | None = None,
    variant: Variant | None = None,
    lock: CacheLock | None = None,
) -> Build:
    """Recompute every product's recommendations in this process and make them live.

    Parameters
    ----------
    trigger
        Who asked: ``"manual"``, ``"schedule"``, ``"admin"``, ``"demo"``...
    strategy
        A strategy instance or registry name; by default :func:`default_strategy`.
    progress
        Called as ``progress(stage, fraction, rows)``; the build's ``progress`` field is kept
        up to date as well, so the admin can show it.
    wait
        Seconds to wait for a rebuild that is already running (default ``CROSSSELL_LOCK_WAIT``).
    publish
        ``False`` leaves the finished build ready instead of live (an experiment variant's
        build); the live build and the cache are then untouched.
    parameters
        Recorded in the build's ``parameters`` besides the strategy and thresholds.
    variant
        The experiment variant the build is computed for (``Build.variant``), if any.
    lock
        The rebuild lock, when the caller already holds it (:func:`rebuild_lock`) to run
        several builds in a row; by default it is taken and released here. Either way its
        heartbeat extends it until the build ends, the fit included.

    Returns
    -------
    Build
        The new live (or, with ``publish=False``, ready) build. On any failure the build is
        marked failed with its error, the previous build stays live, and the exception
        propagates.
    """
    if lock is None:
        with rebuild_lock(wait) as held:
            return rebuild(
                trigger=trigger, strategy=strategy, progress=progress, task_id=task_id,
                publish=publish, parameters=parameters, variant=variant, lock=held,
            )  # fmt: skip
    with lock.keep_alive():  # already beating when taken by ``rebuild_lock``
        model = resolve_strategy(strategy)
        build = start_build(trigger, task_id, model, parameters, variant=variant)
        return run_build(build, model, _Reporter(build, progress), publish=publish)


def resolve_strategy(strategy: ItemRecommender | str | None) -> ItemRecommender:
    """A strategy instance from an instance, a registry name or dotted path, or the default."""
    if strategy is None:
        return default_strategy()
    if isinstance(strategy, str) and "." in strategy:
        cls = import_string(strategy)
        return cls()
    if isinstance(strategy, str):
        from crosssell.engine import registry

        built: ItemRecommender = registry.build_strategy(strategy)
        return built
    return strategy


def start_build(
    trigger: str,
    task_id: str,
    model: ItemRecommender,
    parameters: Mapping[str, Any] | None = None,
    *,
    variant: Variant | None = None,
) -> Build:
    """Create the running build (call with the rebuild lock held).

    A build still marked running now lost its worker (the lock is ours, so nobody runs it): it
    is marked failed.
    """
    Build.objects.filter(state=Build.State.RUNNING).update(
        state=Build.State.FAILED,
        error="The worker running this build stopped before it finished.",
        finished_at=timezone.now(),
    )
    Recommendation.objects.filter(build__state=Build.State.FAILED).delete()
    CartVector.objects.filter(build__state=Build.State.FAILED).delete()
    return Build.objects.create(
        state=Build.State.RUNNING,
        trigger=trigger,
        task_id=task_id,
        parameters={
            "strategy": getattr(model, "name", type(model).__name__),
            "min_customers": settings.MIN_CUSTOMERS,
            "list_length": settings.LIST_LENGTH,
            **(parameters or {}),
        },
        variant=variant,
    )


def run_build(
    build: Build, model: ItemRecommender, report: _Reporter, *, publish: bool = True
) -> Build:
    """Extract, fit, rank, write and publish ``build`` (or only leave it ready with
    ``publish=False``); marks it failed on any error."""
    started = time.perf_counter()
    try:
        report("extract", 0.0, 0)
        # The orders of these pending updates are committed, so the extraction counts them:
        # once this build is live they need no incremental update.
        covered = incremental.pending_snapshot() if publish else []
        ex = extract(progress=report)
        ex.data.extra.setdefault("item_ids", ex.product_ids)
        # a strategy that reads it scores the pairs below the threshold as never bought together
        ex.data.extra[MIN_CUSTOMERS_KEY] = settings.MIN_CUSTOMERS
        report("fit", 0.0, ex.n_lines)
        # Tuned on a tenth of the orders held out, then measured on it (CROSSSELL_TUNE,
        # CROSSSELL_OFFLINE_METRICS): the tuned strategy is the one fitted and served.
        model, metrics = tune_and_measure(build, ex.data, model)
        fit_started = time.perf_counter()
        model.fit(ex.data)
        fit_seconds = time.perf_counter() - fit_started
        report("rank", 0.0, ex.n_lines)
        written = rank_and_write(build, ex, model, report)
        metrics["fit_seconds"] = round(fit_seconds, 3)
        finish_build(build, ex, written, metrics, make_live=publish)
    except BaseException as exc:
        fail_build(build, exc)
        raise
    incremental.clear_pending(covered)
    logger.info(
        "crosssell build #%s %s in %.1fs",
        build.pk,
        "live" if publish else "ready",
        time.perf_counter() - started,
    )
    build.refresh_from_db()
    return build


def finish_build(
    build: Build, ex: Extracted, written: int, metrics: dict[str, Any], *, make_live: bool = True
) -> None:
    """Record the build's counts, mark it ready and publish it (``make_live=False``: only copy
    the merchant's decisions onto it, as publishing would, and leave it ready)."""
    build.counts = {
        "orders": ex.data.n_orders,
        "lines": ex.n_lines,
        "products": ex.data.n_items,
        "products_with_sales": int((ex.data.baskets.getnnz(axis=0) > 0).sum()),
        "customers": ex.data.n_customers,
        "recommendations": written,
    }
    build.metrics = {**build.metrics, **metrics}
    build.finished_at = timezone.now()
    build.state = Build.State.READY
    stage = "publish" if make_live else "ready"
    build.progress = {"stage": stage, "percent": 100, "rows": written}
    if not make_live:
        with transaction.atomic():
            build.save(update_fields=["counts", "metrics", "finished_at", "state", "progress"])
            apply_curation(build)
        return
    build.save(update_fields=["counts", "metrics", "finished_at", "state", "progress"])
    publish(build)


def fail_build(build: Build, exc: BaseException) -> None:
    """Mark ``build`` failed with its error and drop its rows; the live build stays."""
    Build.objects.filter(pk=build.pk).update(
        state=Build.State.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
    )
    Recommendation.objects.filter(build_id=build.pk).delete()
    CartVector.objects.filter(build_id=build.pk).delete()
    logger.error("crosssell build #%s failed: %s", build.pk, exc)


class _Reporter:
    """Forwards progress to a callback and, at most twice a second, to the Build row."""

    def __init__(self, build: Build, callback: ProgressFn | None) -> None:
        self.build = build
        self.callback = callback
        self.last = 0.0

    def __call__(self, stage: str, fraction: float, rows: int) -> None:
        if self.callback:
            self.callback(stage, fraction, rows)
        now = time.monotonic()
        if now - self.last >= 0.5 or fraction >= 1.0:
            self.last = now
            progress = {"stage": stage, "percent": round(100 * fraction, 1), "rows": rows}
            Build.objects.filter(pk=self.build.pk).update(progress=progress)


@transaction.atomic
def publish(build: Build) -> Build:
    """Make ``build`` the live one in one transaction (also how a rollback is done)."""
    build = Build.objects.select_for_update().get(pk=build.pk)
    if build.state not in (Build.State.READY, Build.State.LIVE):
        raise ValueError(f"Build #{build.pk} is {build.state}; only a ready build can go live.")
    Build.objects.filter(state=Build.State.LIVE).exclude(pk=build.pk).update(
        state=Build.State.READY
    )
    apply_curation(build)
    build.state = Build.State.LIVE
    build.published_at = timezone.now()
    build.save(update_fields=["state", "published_at"])
    prune_builds()
    cs_cache.bump_on_commit()
    return build


def apply_curation(build: Build) -> None:
    """Copy the merchant's pinned and rejected decisions onto ``build``'s rows."""
    rows = Recommendation.objects.filter(build=build)
    for status in (Recommendation.Status.PINNED, Recommendation.Status.REJECTED):
        decided = Recommendation.objects.filter(
            build__isnull=True,
            status=status,
            kind=OuterRef("kind"),
            source=OuterRef("source"),
            target=OuterRef("target"),
        )
        rows.filter(Exists(decided)).update(status=status)


def prune_builds() -> int:
    """Delete the builds nobody needs any more; returns how many.

    Kept: the live and running builds, every build a variant serves (``Variant.build``), and
    the ``CROSSSELL_KEEP_BUILDS`` newest others, for rollback. A variant's build that never
    went live is no rollback candidate and takes none of those places: once no variant serves
    it, it goes when its variant has a newer build or no longer exists. A variant's newest
    build is spared even when unserved, since it may be the one being attached to its variant
    at this moment (``publish`` from the admin runs without the rebuild lock).
    """
    keep = settings.KEEP_BUILDS
    served = Exists(Variant.objects.filter(build=OuterRef("pk")))
    done = Build.objects.filter(state__in=[Build.State.READY, Build.State.FAILED]).filter(~served)
    history = done.exclude(VARIANT_ONLY).order_by("-created_at", "-id")
    old = list(history.values_list("pk", flat=True)[keep:])
    old += _superseded_variant_builds(list(done.filter(VARIANT_ONLY).values_list("pk", flat=True)))
    if old:
        Build.objects.filter(pk__in=old).delete()
    return len(old)


def _superseded_variant_builds(candidates: list[int]) -> list[int]:
    """Of ``candidates`` (unserved variant builds), those whose variant has a newer build or is
    gone. There are a few variant builds at most, so this is done in Python."""
    if not candidates:
        return []
    newest: dict[int | None, int] = {}
    for pk, variant in (
        Build.objects.filter(trigger=Build.VARIANT_TRIGGER)
        .order_by("created_at", "id")
        .values_list("pk", "variant_id")
    ):
        newest[variant] = pk
    owner = dict(Build.objects.filter(pk__in=candidates).values_list("pk", "variant_id"))
    return [pk for pk, v in owner.items() if v is None or newest.get(v) != pk]
