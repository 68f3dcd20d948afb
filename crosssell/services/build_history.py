"""The history of complete builds: the one before a build, what changed, metric series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery

from crosssell.models import Build, Recommendation

#: A variant's own build (an experiment's strategy) is no step of the live history.
VARIANT_ONLY = Q(trigger=Build.VARIANT_TRIGGER, published_at__isnull=True)


def previous_build(build: Build) -> Build | None:
    """The complete (ready or live) build made just before ``build``, an experiment variant's
    own builds left out."""
    return (
        Build.objects.filter(state__in=[Build.State.READY, Build.State.LIVE])
        .exclude(VARIANT_ONLY)
        .filter(
            Q(created_at__lt=build.created_at) | Q(created_at=build.created_at, pk__lt=build.pk)
        )
        .exclude(pk=build.pk)
        .order_by("-created_at", "-pk")
        .first()
    )


@dataclass
class BuildDiff:
    """What changed from ``previous`` to ``build``: pairs added, dropped and moved."""

    build: Build
    previous: Build | None
    added_count: int = 0
    dropped_count: int = 0
    moved_count: int = 0
    added: list[Recommendation] = field(default_factory=list)
    dropped: list[Recommendation] = field(default_factory=list)
    moved: list[Recommendation] = field(default_factory=list)  # each with ``old_rank``

    @property
    def changed(self) -> bool:
        return bool(self.added_count or self.dropped_count or self.moved_count)


def build_diff(
    build: Build, previous: Build | None = None, *, kind: str | None = None, limit: int = 50
) -> BuildDiff:
    """Compare a build with the one before it (or ``previous``), in the database.

    Parameters
    ----------
    build
        The newer build.
    previous
        The build to compare with; default :func:`previous_build`.
    kind
        Only this kind of recommendation (default all).
    limit
        How many examples of each change are loaded (the counts are exact).

    Returns
    -------
    BuildDiff
        Counts and examples (with their products loaded) of pairs added, dropped, and moved
        to another rank; moved rows carry an ``old_rank`` attribute.
    """
    previous = previous if previous is not None else previous_build(build)
    diff = BuildDiff(build, previous)
    if previous is None:
        return diff

    def rows(b: Build) -> QuerySet[Recommendation]:
        qs = Recommendation.objects.filter(build=b)
        return qs.filter(kind=kind) if kind else qs

    def same(b: Build) -> QuerySet[Recommendation]:
        return Recommendation.objects.filter(
            build=b, kind=OuterRef("kind"), source=OuterRef("source"), target=OuterRef("target")
        )

    added = rows(build).filter(~Exists(same(previous)))
    dropped = rows(previous).filter(~Exists(same(build)))
    moved = (
        rows(build)
        .annotate(old_rank=Subquery(same(previous).values("rank")[:1]))
        .filter(old_rank__isnull=False)
        .exclude(rank=F("old_rank"))
    )
    order = ("kind", "source_id", "rank", "pk")
    diff.added_count, diff.dropped_count, diff.moved_count = (
        added.count(),
        dropped.count(),
        moved.count(),
    )
    diff.added = list(added.select_related("source", "target").order_by(*order)[:limit])
    diff.dropped = list(dropped.select_related("source", "target").order_by(*order)[:limit])
    diff.moved = list(moved.select_related("source", "target").order_by(*order)[:limit])
    return diff


def metrics_history(n: int = 12) -> list[Build]:
    """The last ``n`` complete builds, oldest first (for the metrics chart); an experiment
    variant's own builds are left out."""
    recent = list(
        Build.objects.filter(state__in=[Build.State.READY, Build.State.LIVE])
        .exclude(VARIANT_ONLY)
        .order_by("-created_at", "-pk")[:n]
    )
    return recent[::-1]


def metric_series(builds: Sequence[Build]) -> dict[str, list[tuple[int, float]]]:
    """Every numeric offline metric of ``builds`` as (build id, value) series, by name."""
    series: dict[str, list[tuple[int, float]]] = {}
    for build in builds:
        for name, value in (build.metrics or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            series.setdefault(str(name), []).append((int(build.pk), float(value)))
    return dict(sorted(series.items()))


__all__ = [
    "BuildDiff",
    "build_diff",
    "metric_series",
    "metrics_history",
    "previous_build",
]
