"""The merchant's decisions: pin, reject, reset and add by hand, one pair or several rows.

A decision is a *curated row*: a :class:`~crosssell.models.Recommendation` with no build and
status pinned or rejected. Every build's matching row gets the same status at once (so the live
build serves it now and a rollback to an older build does not resurrect an old decision), and
``services.build.apply_curation`` copies it onto every new build. Every change starts a new
cache generation when its transaction commits. The bulk rule is in :mod:`.curation_rules`,
exclusions in :mod:`.exclusions`, build history in :mod:`.build_history` and the admin's
figures in :mod:`.dashboard`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import F, Max, QuerySet

from crosssell.models import Recommendation
from crosssell.services.cache import bump, bump_on_commit  # the cache's own, re-exported
from crosssell.services.products import products

Kind = Recommendation.Kind
Status = Recommendation.Status
FBT = Kind.BOUGHT_TOGETHER


class CurationError(ValueError):
    """A curation request that cannot be honoured (unknown product, a pair with itself...)."""


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


__all__ = [
    "CurationError",
    "add_by_hand",
    "bump",
    "bump_on_commit",
    "curate_rows",
    "pin",
    "reject",
    "reset",
    "set_status",
]
