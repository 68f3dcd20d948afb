"""Oscar's own recommendations (``catalogue.ProductRecommendation``) as crosssell pins.

The merchant ranked them by hand in Oscar's dashboard, so they come first in the product's
"frequently bought together" list, in Oscar's order (the highest ranking first), as curated
pins with strategy ``"oscar"``; the crosssell admin shows them as Oscar's. A decision the
merchant made in crosssell's admin about the same pair wins and is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from oscar.core.loading import get_model

from crosssell.models import Recommendation
from crosssell.services.cache import bump_on_commit

OSCAR = "oscar"
FBT = Recommendation.Kind.BOUGHT_TOGETHER
Status = Recommendation.Status


def sync(primary_ids: Iterable[int] | None = None) -> int:
    """Mirror Oscar's recommendations of ``primary_ids`` (all products when ``None``) as pins;
    returns how many pins now come from Oscar for those products."""
    link = get_model("catalogue", "ProductRecommendation")
    qs = link._default_manager.select_related("recommendation").order_by(
        "primary_id", "-ranking", "pk"
    )
    curated = Recommendation.objects.filter(build__isnull=True, kind=FBT)
    if primary_ids is not None:
        ids = sorted({int(i) for i in primary_ids})
        qs = qs.filter(primary_id__in=ids)
        curated = curated.filter(source_id__in=ids)
    wanted: dict[int, list[int]] = {}
    for row in qs:
        # A child recommended by hand is shown as its parent, the product customers browse.
        target = row.recommendation.parent_id or row.recommendation_id
        if target != row.primary_id and target not in wanted.setdefault(row.primary_id, []):
            wanted[row.primary_id].append(target)
    written = 0
    with transaction.atomic():
        rows = list(curated.select_for_update().order_by("source_id", "rank", "pk"))
        by_source: dict[int, list[Recommendation]] = {}
        for rec in rows:
            by_source.setdefault(rec.source_id, []).append(rec)
        sources = set(by_source) | set(wanted)
        for source in sources:
            written += _sync_source(source, wanted.get(source, []), by_source.get(source, []))
        bump_on_commit()
    return written


def _sync_source(source: int, targets: list[int], existing: list[Recommendation]) -> int:
    """Oscar's pins first (ranks 0..n-1), the merchant's own pins after them in their order.

    A pair the merchant decided in crosssell is left alone: a pin of their own, or any pair
    they rejected, even one that came from Oscar (crosssell's admin keeps the row's strategy
    when it rejects it), so the rejection stays whatever Oscar's list says.
    """
    ours = {r.target_id: r for r in existing if _from_oscar(r)}
    decided = {r.target_id for r in existing if not _from_oscar(r)}
    keep = [t for t in targets if t not in decided]
    stale = [r.pk for t, r in ours.items() if t not in keep]
    if stale:
        Recommendation.objects.filter(pk__in=stale).delete()
    new = [
        Recommendation(
            build=None,
            kind=FBT,
            source_id=source,
            target_id=t,
            status=Status.PINNED,
            strategy=OSCAR,
            rank=0,
            evidence={"oscar": True},
        )
        for t in keep
        if t not in ours
    ]
    Recommendation.objects.bulk_create(new)
    placed = {r.target_id: r for r in new} | {t: ours[t] for t in keep if t in ours}
    ordered = [placed[t] for t in keep]
    ordered += [r for r in existing if not _from_oscar(r) and r.status == Status.PINNED]
    changed = []
    for rank, rec in enumerate(ordered):
        if rec.rank != rank:
            rec.rank = rank
            changed.append(rec)
    if changed:
        Recommendation.objects.bulk_update(changed, ["rank"])
    return len(keep)


def _from_oscar(rec: Recommendation) -> bool:
    """A pin that mirrors Oscar's recommendation (not a decision of the merchant's)."""
    return rec.strategy == OSCAR and rec.status == Status.PINNED


def oscar_pins(source_id: int) -> list[Recommendation]:
    """The pins of a product that come from Oscar, in the order the widget shows them (never
    a pair the merchant rejected in crosssell)."""
    return list(
        Recommendation.objects.filter(
            build__isnull=True,
            kind=FBT,
            source_id=source_id,
            strategy=OSCAR,
            status=Status.PINNED,
        )
        .select_related("target")
        .order_by("rank", "pk")
    )
