"""The merchant's curation: pin, reject, reset and add by hand, the bulk pinning rule, what
changed between two builds, and how well the catalog is covered.

A decision is a *curated row*: a :class:`~crosssell.models.Recommendation` with no build and
status pinned or rejected. Every build's matching row gets the same status at once (so the live
build serves it now and a rollback to an older build does not resurrect an old decision), and
``services.build.apply_curation`` copies it onto every new build. Every change starts a new
cache generation when its transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, F, Max, Min, Model, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from crosssell.conf import settings
from crosssell.models import Build, Purchase, Recommendation
from crosssell.services import cache as cs_cache
from crosssell.services import exclusions as cs_exclusions
from crosssell.services.catalog import get_catalog
from crosssell.services.identity import identity_expression
from crosssell.services.products import products, sellable_products, sellable_q
from crosssell.services.serving import Item, category_of, recommend

Kind = Recommendation.Kind
Status = Recommendation.Status
FBT = Kind.BOUGHT_TOGETHER

#: Strategies that fill a list rather than say anything about the pair: bestsellers (at build
#: time and at serving time) and content similarity, the design's fallback for unsold products.
FALLBACK_STRATEGIES = frozenset(
    {
        "popularity",
        "category_popularity",
        "bestsellers",
        "category_bestsellers",
        "content",
        "content_similar",
    }
)


class CurationError(ValueError):
    """A curation request that cannot be honoured (unknown product, a pair with itself...)."""


# --------------------------------------------------------------------------- the cache


def bump() -> None:
    """Start a new cache generation, so every list reflects the change at once."""
    cs_cache.bump()


def bump_on_commit() -> None:
    """Call :func:`bump` once the current transaction commits (at once outside one)."""
    transaction.on_commit(bump)


# --------------------------------------------------------------------------- decisions


def _check_pair(source_id: int, target_id: int, kind: str) -> None:
    if kind not in Kind.values:
        raise CurationError(f"Unknown kind {kind!r}; expected one of {', '.join(Kind.values)}.")
    if source_id == target_id:
        raise CurationError("A product cannot be recommended with itself.")
    found = set(products().filter(pk__in=[source_id, target_id]).values_list("pk", flat=True))
    missing = {source_id, target_id} - {int(pk) for pk in found}
    if missing:
        raise CurationError(f"No product with id {', '.join(map(str, sorted(missing)))}.")


def _build_rows(kind: str, source_id: int, target_id: int) -> QuerySet[Recommendation]:
    return Recommendation.objects.filter(
        build__isnull=False, kind=kind, source_id=source_id, target_id=target_id
    )


def _curated(kind: str, source_id: int) -> QuerySet[Recommendation]:
    return Recommendation.objects.filter(build__isnull=True, kind=kind, source_id=source_id)


def _renumber_pins(
    kind: str, source_id: int, moved: int | None = None, position: int | None = None
) -> None:
    """Ranks 0, 1, 2... for a source's curated pins, optionally moving one target to
    ``position`` (the pins' order is the order the widget shows them in)."""
    pins = list(
        _curated(kind, source_id)
        .filter(status=Status.PINNED)
        .select_for_update()
        .order_by("rank", "updated_at", "pk")
    )
    if moved is not None and position is not None:
        row = next((p for p in pins if p.target_id == moved), None)
        if row is not None:
            pins.remove(row)
            pins.insert(max(0, min(position, len(pins))), row)
    changed = []
    for rank, pin in enumerate(pins):
        if pin.rank != rank:
            pin.rank = rank
            changed.append(pin)
    if changed:
        Recommendation.objects.bulk_update(changed, ["rank"])


def _decide(
    source_id: int, target_id: int, status: str, kind: str, rank: int | None
) -> Recommendation | None:
    """One decision without the cache bump; the caller holds a transaction."""
    source_id, target_id = int(source_id), int(target_id)
    if status not in Status.values:
        raise CurationError(f"Unknown status {status!r}.")
    _check_pair(source_id, target_id, kind)
    rows = _build_rows(kind, source_id, target_id)
    if status == Status.AUTO:
        _curated(kind, source_id).filter(target_id=target_id).delete()
        rows.exclude(status=Status.AUTO).update(status=Status.AUTO)
        _renumber_pins(kind, source_id)
        return None
    # The curated row keeps the evidence of the build row it was decided on, for the admin.
    model_row = rows.order_by(
        F("build__published_at").desc(nulls_last=True), "-build__created_at"
    ).first()
    existing = _curated(kind, source_id).filter(target_id=target_id).first()
    if status == Status.PINNED and (existing is None or existing.status != Status.PINNED):
        end = _curated(kind, source_id).filter(status=Status.PINNED).aggregate(n=Max("rank"))["n"]
        new_rank = 0 if end is None else end + 1
    else:
        new_rank = existing.rank if existing is not None else 0
    defaults: dict[str, Any] = {"status": status, "rank": new_rank}
    create: dict[str, Any] = {
        **defaults,
        "score": model_row.score if model_row else 0.0,
        "strategy": model_row.strategy if model_row else "manual",
        "evidence": dict(model_row.evidence) if model_row else {},
    }
    curated, _ = Recommendation.objects.update_or_create(
        build=None,
        kind=kind,
        source_id=source_id,
        target_id=target_id,
        defaults=defaults,
        create_defaults=create,
    )
    rows.exclude(status=status).update(status=status)
    if status == Status.PINNED and rank is not None:
        _renumber_pins(kind, source_id, moved=target_id, position=rank)
        curated.refresh_from_db()
    elif existing is not None and existing.status == Status.PINNED:
        _renumber_pins(kind, source_id)  # a pin became a rejection: close the gap
    return curated


def set_status(
    source_id: int, target_id: int, status: str, *, kind: str = FBT, rank: int | None = None
) -> Recommendation | None:
    """Record the merchant's decision on one pair, effective at once and in every later build.

    Parameters
    ----------
    source_id, target_id
        Primary keys of the products: ``target`` is (or is no longer) recommended with
        ``source``.
    status
        ``"pinned"``, ``"rejected"`` or ``"auto"`` (reset: forget the decision).
    kind
        The recommendation kind (default frequently bought together).
    rank
        For a pin, its position among the source's pins (0 first); by default a new pin goes
        last and an existing one keeps its place.

    Returns
    -------
    Recommendation or None
        The curated row (no build), or ``None`` after a reset.

    Raises
    ------
    CurationError
        An unknown product, kind or status, or a product with itself.
    """
    with transaction.atomic():
        curated = _decide(source_id, target_id, status, kind, rank)
        bump_on_commit()
    return curated


def pin(
    source_id: int, target_id: int, *, kind: str = FBT, rank: int | None = None
) -> Recommendation:
    """Always show ``target`` with ``source``, before the automatic recommendations.

    Also how a recommendation is added by hand: the pair needs no build row. See
    :func:`set_status` for the parameters.
    """
    row = set_status(source_id, target_id, Status.PINNED, kind=kind, rank=rank)
    assert row is not None
    return row


def reject(source_id: int, target_id: int, *, kind: str = FBT) -> Recommendation:
    """Never show ``target`` with ``source`` (until reset). See :func:`set_status`."""
    row = set_status(source_id, target_id, Status.REJECTED, kind=kind)
    assert row is not None
    return row


def reset(source_id: int, target_id: int, *, kind: str = FBT) -> None:
    """Forget the merchant's decision on the pair: the builds decide again."""
    set_status(source_id, target_id, Status.AUTO, kind=kind)


add_by_hand = pin


def curate_rows(rows: Iterable[Recommendation], status: str) -> list[Recommendation]:
    """Apply one decision to the pairs of several rows (the admin's bulk actions).

    Parameters
    ----------
    rows
        Recommendations of any build, or curated ones; each stands for its (kind, source,
        target) pair, and a pair selected twice is decided once.
    status
        ``"pinned"``, ``"rejected"`` or ``"auto"``.

    Returns
    -------
    list of Recommendation
        One row per distinct pair that was decided (the rows given, first of each pair).
    """
    done: dict[tuple[str, int, int], Recommendation] = {}
    with transaction.atomic():
        for row in rows:
            pair = (row.kind, int(row.source_id), int(row.target_id))
            if pair in done:
                continue
            _decide(pair[1], pair[2], status, pair[0], None)
            done[pair] = row
        if done:
            bump_on_commit()
    return list(done.values())


@dataclass(frozen=True)
class RuleResult:
    """What the bulk rule matched and did."""

    matched: int
    pinned: int
    already_pinned: int
    skipped_rejected: int
    build_id: int | None


def rule_candidates(
    min_lift: float, min_customers: int, *, kind: str = FBT, build: Build | None = None
) -> QuerySet[Recommendation]:
    """The rows of ``build`` (default: the live one) with lift >= ``min_lift`` bought together
    by >= ``min_customers`` distinct customers, in serving order."""
    build = build or _live()
    if build is None:
        return Recommendation.objects.none()
    return Recommendation.objects.filter(
        build=build,
        kind=kind,
        evidence__lift__gte=float(min_lift),
        evidence__customers__gte=int(min_customers),
    ).order_by("source_id", "rank", "pk")


def pin_by_rule(
    min_lift: float,
    min_customers: int,
    *,
    kind: str = FBT,
    build: Build | None = None,
    dry_run: bool = False,
) -> RuleResult:
    """Pin every pair of a build with lift >= ``min_lift`` bought by >= ``min_customers``.

    Pairs the merchant rejected stay rejected; pairs already pinned keep their place. New pins
    of a source go after its existing pins, in the build's order.

    Parameters
    ----------
    min_lift, min_customers
        The thresholds on the row's evidence.
    kind
        The recommendation kind.
    build
        The build whose rows are read (default: the live one).
    dry_run
        Count only; change nothing.

    Returns
    -------
    RuleResult
        How many rows matched, were pinned, were already pinned, were skipped as rejected.
    """
    if min_lift < 0 or min_customers < 0:
        raise CurationError("The thresholds must not be negative.")
    build = build or _live()
    candidates = list(
        rule_candidates(min_lift, min_customers, kind=kind, build=build).values_list(
            "source_id", "target_id", "score", "strategy", "evidence"
        )
    )
    decided = {
        (s, t): st
        for s, t, st in Recommendation.objects.filter(
            build__isnull=True, kind=kind, source_id__in={c[0] for c in candidates}
        ).values_list("source_id", "target_id", "status")
    }
    fresh = [c for c in candidates if (c[0], c[1]) not in decided]
    already = sum(1 for c in candidates if decided.get((c[0], c[1])) == Status.PINNED)
    rejected = sum(1 for c in candidates if decided.get((c[0], c[1])) == Status.REJECTED)
    result = RuleResult(len(candidates), len(fresh), already, rejected, build.pk if build else None)
    if dry_run or not fresh:
        return result
    with transaction.atomic():
        ends = dict(
            Recommendation.objects.filter(
                build__isnull=True,
                kind=kind,
                status=Status.PINNED,
                source_id__in={c[0] for c in fresh},
            )
            .values("source_id")
            .annotate(end=Max("rank"))
            .values_list("source_id", "end")
        )
        next_rank = {s: end + 1 for s, end in ends.items()}
        new = []
        for source_id, target_id, score, strategy, evidence in fresh:
            rank = next_rank.get(source_id, 0)
            next_rank[source_id] = rank + 1
            new.append(
                Recommendation(
                    build=None,
                    kind=kind,
                    source_id=source_id,
                    target_id=target_id,
                    score=score,
                    strategy=strategy,
                    evidence=evidence,
                    status=Status.PINNED,
                    rank=rank,
                )
            )
        Recommendation.objects.bulk_create(new, batch_size=2_000)
        pinned = Recommendation.objects.filter(
            build__isnull=True,
            status=Status.PINNED,
            kind=OuterRef("kind"),
            source=OuterRef("source"),
            target=OuterRef("target"),
        )
        Recommendation.objects.filter(
            build__isnull=False, kind=kind, source_id__in={c[0] for c in fresh}
        ).exclude(status=Status.PINNED).filter(Exists(pinned)).update(status=Status.PINNED)
        bump_on_commit()
    return result


# --------------------------------------------------------------------------- exclusions


def _categories(ids: Iterable[int]) -> dict[int, str]:
    column = get_catalog().column("category")
    ids = {int(i) for i in ids}
    if not column or not ids:
        return {}
    rows = products().filter(pk__in=ids).values_list("pk", column)
    return {int(pk): str(cat) if cat is not None else "" for pk, cat in rows}


def excluded_pairs(source_ids: Iterable[int], target_ids: Iterable[int]) -> set[tuple[int, int]]:
    """The (source, target) pairs among ``source_ids`` x ``target_ids`` that an exclusion
    forbids (product or category on either side; symmetric ones both ways).

    Parameters
    ----------
    source_ids, target_ids
        Product primary keys (a product page's product or a cart's lines, and the candidates).

    Returns
    -------
    set of (int, int)
        Forbidden pairs. Costs one query for the products' categories (none when there are
        no exclusions); the rules themselves are cached per cache generation.
    """
    sources = sorted({int(s) for s in source_ids})
    targets = sorted({int(t) for t in target_ids})
    rules = cs_exclusions.load_rules()
    if not rules or not sources or not targets:
        return set()
    cats = _categories([*sources, *targets])
    return {
        (s, t)
        for s in sources
        for t in targets
        if s != t and rules.excluded(s, cats.get(s, ""), t, cats.get(t, ""))
    }


def excluded_targets(source_ids: Iterable[int], target_ids: Iterable[int]) -> set[int]:
    """The targets excluded with at least one of the sources (for a cart's list)."""
    return {t for _, t in excluded_pairs(source_ids, target_ids)}


def is_excluded(source_id: int, target_id: int) -> bool:
    """Whether an exclusion forbids recommending ``target_id`` with ``source_id``."""
    return bool(excluded_pairs([source_id], [target_id]))


# --------------------------------------------------------------------------- builds


def _live() -> Build | None:
    return Build.objects.filter(state=Build.State.LIVE).first()


#: A variant's own build (an experiment's strategy) is no step of the live history.
VARIANT_ONLY = Q(trigger="variant", published_at__isnull=True)


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


# --------------------------------------------------------------------------- overview


@dataclass(frozen=True)
class Coverage:
    """How many sellable products get real recommendations (not only fallbacks)."""

    sellable: int
    full: int  # a full widget of real recommendations
    some_real: int  # at least one
    limit: int

    @property
    def only_fallback(self) -> int:
        return self.sellable - self.some_real

    def share(self, value: int) -> float:
        return value / self.sellable if self.sellable else 0.0

    @property
    def full_share(self) -> float:
        return self.share(self.full)

    @property
    def some_real_share(self) -> float:
        return self.share(self.some_real)

    @property
    def only_fallback_share(self) -> float:
        return self.share(self.only_fallback)


def coverage(kind: str = FBT, limit: int | None = None) -> Coverage:
    """Share of sellable products whose widget is full of, has some, or has no real
    recommendations.

    A real recommendation is a pinned pair or a live, not rejected row of a non-fallback
    strategy (:data:`FALLBACK_STRATEGIES`) whose target is sellable. Three aggregate queries.

    Parameters
    ----------
    kind
        The recommendation kind.
    limit
        The widget's length (default ``CROSSSELL_DEFAULT_LIMIT``).
    """
    limit = int(settings.DEFAULT_LIMIT if limit is None else limit)
    sellable = sellable_products().count()
    real = (
        Recommendation.objects.filter(kind=kind)
        .filter(
            Q(build__state=Build.State.LIVE, status__in=[Status.AUTO, Status.PINNED])
            & ~Q(strategy__in=FALLBACK_STRATEGIES)
            | Q(build__isnull=True, status=Status.PINNED)
        )
        .filter(sellable_q("source__"), sellable_q("target__"))
        .values("source_id")
        .annotate(n=Count("target_id", distinct=True))
    )
    return Coverage(sellable, real.filter(n__gte=limit).count(), real.count(), limit)


@dataclass(frozen=True)
class Readiness:
    """How much order history there is to learn from, and how fresh the live build is."""

    products: int
    sellable: int
    orders: int
    lines: int
    customers: int
    products_with_sales: int
    first_purchase: datetime | None
    last_purchase: datetime | None
    live_build: Build | None

    @property
    def live_age(self) -> timedelta | None:
        if self.live_build is None:
            return None
        when = self.live_build.published_at or self.live_build.finished_at
        return timezone.now() - when if when else None

    @property
    def sales_share(self) -> float:
        return self.products_with_sales / self.products if self.products else 0.0


def readiness() -> Readiness:
    """Orders, lines, customers and products with sales; the live build and its age."""
    agg = Purchase.objects.aggregate(
        lines=Count("id"),
        orders=Count("order_ref", distinct=True),
        customers=Count(identity_expression(), distinct=True),  # people, as the threshold
        products_with_sales=Count("product", distinct=True),
        first=Min("purchased_at"),
        last=Max("purchased_at"),
    )
    return Readiness(
        products=products().count(),
        sellable=sellable_products().count(),
        orders=agg["orders"],
        lines=agg["lines"],
        customers=agg["customers"],
        products_with_sales=agg["products_with_sales"],
        first_purchase=agg["first"],
        last_purchase=agg["last"],
        live_build=_live(),
    )


# --------------------------------------------------------------------------- product panel


@dataclass(frozen=True)
class ProductPanel:
    """A product's recommendations as the merchant reviews them."""

    shown: list[Item]  # exactly what the widget shows now, in order
    live_rows: list[Recommendation]  # the live build's list, any status
    curated: list[Recommendation]  # the merchant's decisions (no build)
    excluded: set[int]  # shown or listed targets an exclusion forbids


def product_panel(product: Model, *, kind: str = FBT, limit: int | None = None) -> ProductPanel:
    """What the ``kind`` widget of ``product`` shows now (via :func:`serving.recommend`, with
    its fallbacks and their provenance), the live build's rows and the merchant's decisions."""
    limit = int(settings.DEFAULT_LIMIT if limit is None else limit)
    category = category_of(product)  # as the widgets call it
    shown = recommend([product.pk], limit, kind=kind, category=category)
    live_rows = list(
        Recommendation.objects.filter(
            build__state=Build.State.LIVE, kind=kind, source_id=product.pk
        )
        .select_related("target")
        .order_by("rank", "pk")
    )
    curated = list(
        _curated(kind, int(product.pk)).select_related("target").order_by("status", "rank", "pk")
    )
    targets = {i.slot.product_id for i in shown} | {r.target_id for r in live_rows}
    return ProductPanel(shown, live_rows, curated, excluded_targets([product.pk], targets))


__all__ = [
    "FALLBACK_STRATEGIES",
    "BuildDiff",
    "Coverage",
    "CurationError",
    "ProductPanel",
    "Readiness",
    "RuleResult",
    "add_by_hand",
    "build_diff",
    "bump",
    "bump_on_commit",
    "coverage",
    "curate_rows",
    "excluded_pairs",
    "excluded_targets",
    "is_excluded",
    "metric_series",
    "metrics_history",
    "pin",
    "pin_by_rule",
    "previous_build",
    "product_panel",
    "readiness",
    "reject",
    "reset",
    "rule_candidates",
    "set_status",
]
