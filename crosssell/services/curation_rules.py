"""The bulk pinning rule: pin every pair of a build above a lift and a customer count."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, Max, OuterRef, QuerySet

from crosssell.models import Build, Recommendation
from crosssell.services.cache import bump_on_commit
from crosssell.services.curation import CurationError

Kind = Recommendation.Kind
Status = Recommendation.Status
FBT = Kind.BOUGHT_TOGETHER


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
    build = build or Build.live()
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
    build = build or Build.live()
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


__all__ = [
    "RuleResult",
    "pin_by_rule",
    "rule_candidates",
]
