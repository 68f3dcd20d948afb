"""What each variant of an experiment earns, with confidence intervals, and whether there is a
winner.

Per variant: visitors exposed (distinct visitors with an impression on the placement, a holdout
included), impressions, click-through rate (visitors who clicked / visitors), add-to-cart rate
(visitors who added / visitors), conversion (visitors with a purchase / visitors), revenue,
attributed revenue (lines bought from a widget), and average order value. Rates get Wilson 95%
intervals; each variant's conversion is compared with the control (the first variant) by a
two-proportion z-test, and a winner is declared only when it beats the control and every other
variant at the Bonferroni-corrected 5% level.

Every count is of visitors, never of raw events, and only of visitors the variant was shown to
(an event of a visitor with no impression in the variant counts nowhere): each rate is a share
of one set of visitors, between 0 and 1 by construction, however many events a client replays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, Sum

from crosssell.models import Event, Experiment, Impression, Variant

Z95 = 1.959963984540054


@dataclass
class VariantStats:
    """One row of the experiment's table."""

    variant: Variant
    visitors: int = 0  # shown the variant (an impression in it)
    impressions: int = 0
    clicks: int = 0  # of those visitors, how many clicked
    add_to_cart: int = 0  # ... added to the cart from a widget
    converted: int = 0  # ... bought
    orders: int = 0
    revenue: Decimal = Decimal("0")
    attributed_revenue: Decimal = Decimal("0")
    ctr: float = 0.0
    ctr_ci: tuple[float, float] = (0.0, 0.0)
    atc_rate: float = 0.0
    conversion: float = 0.0
    conversion_ci: tuple[float, float] = (0.0, 0.0)
    aov: Decimal = Decimal("0")
    lift: float | None = None
    lift_ci: tuple[float, float] | None = None
    p_value: float | None = None


@dataclass
class Report:
    """Every variant's row, and the winner if the data shows one."""

    experiment: Experiment
    rows: list[VariantStats] = field(default_factory=list)
    winner: Variant | None = None
    alpha: float = 0.05


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    ``successes`` is clamped to ``[0, n]``: the report never passes more successes than
    trials, and a caller that did gets the interval of a proportion of 1, not a crash.
    """
    if n <= 0:
        return (0.0, 0.0)
    successes = min(max(successes, 0), n)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportions(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float]:
    """Difference p2 - p1, its 95% interval (unpooled) and the two-sided p-value (pooled z)."""
    if n1 <= 0 or n2 <= 0:
        return (0.0, 0.0, 1.0)
    x1, x2 = min(max(x1, 0), n1), min(max(x2, 0), n2)  # as wilson(): a proportion in [0, 1]
    p1, p2 = x1 / n1, x2 / n2
    diff = p2 - p1
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (x1 + x2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se0 == 0:
        return (diff, diff, 1.0)
    z = diff / se0
    p_value = math.erfc(abs(z) / math.sqrt(2))
    return (diff - Z95 * se, diff + Z95 * se, p_value)


def report(experiment: Experiment, alpha: float = 0.05) -> Report:
    """The experiment's table: a few grouped queries, whatever the traffic."""
    return reports([experiment], alpha)[experiment.pk]


def reports(experiments: Iterable[Experiment], alpha: float = 0.05) -> dict[int, Report]:
    """The tables of several experiments (an admin list page), by experiment id: three grouped
    queries, whatever their number and their traffic."""
    listed = {e.pk: e for e in experiments}
    variants: dict[int, list[Variant]] = {pk: [] for pk in listed}
    for v in Variant.objects.filter(experiment__in=list(listed)).order_by("pk"):
        v.experiment = listed[v.experiment_id]
        variants[v.experiment_id].append(v)
    every = [v.pk for found in variants.values() for v in found]
    if not every:
        return {pk: Report(e, alpha=alpha) for pk, e in listed.items()}
    imp = {
        r["variant"]: r
        for r in Impression.objects.filter(variant__in=every)
        .values("variant")
        .annotate(n=Count("id"), visitors=Count("visitor", distinct=True))
    }
    # Only the events of visitors the variant was shown to: a click replayed under a forged
    # visitor, or a purchase by a visitor the variant never reached, counts for no variant.
    exposed = Impression.objects.filter(variant=OuterRef("variant"), visitor=OuterRef("visitor"))
    ev = {
        r["variant"]: r
        for r in Event.objects.filter(Exists(exposed), variant__in=every)
        .values("variant")
        .annotate(
            clicks=Count("visitor", filter=Q(type=Event.Type.CLICK), distinct=True),
            atc=Count("visitor", filter=Q(type=Event.Type.ADD_TO_CART), distinct=True),
            converted=Count("visitor", filter=Q(type=Event.Type.PURCHASE), distinct=True),
            orders=Count("order_ref", filter=Q(type=Event.Type.PURCHASE), distinct=True),
            revenue_sum=Sum("revenue", filter=Q(type=Event.Type.PURCHASE)),
            attributed_sum=Sum(
                "revenue", filter=Q(type=Event.Type.PURCHASE, impression__isnull=False)
            ),
        )
    }
    return {pk: _table(e, variants[pk], imp, ev, alpha) for pk, e in listed.items()}


def _table(
    experiment: Experiment,
    variants: list[Variant],
    imp: dict[int, dict[str, Any]],
    ev: dict[int, dict[str, Any]],
    alpha: float,
) -> Report:
    out = Report(experiment, alpha=alpha)
    if not variants:
        return out
    for v in variants:
        i, e = imp.get(v.pk, {}), ev.get(v.pk, {})
        row = VariantStats(
            variant=v,
            visitors=i.get("visitors", 0),
            impressions=i.get("n", 0),
            clicks=e.get("clicks", 0),
            add_to_cart=e.get("atc", 0),
            converted=e.get("converted", 0),
            orders=e.get("orders", 0),
            revenue=e.get("revenue_sum") or Decimal("0"),
            attributed_revenue=e.get("attributed_sum") or Decimal("0"),
        )
        # Each numerator is a set of visitors within row.visitors (the query above), so each
        # rate is within [0, 1]; the min() only keeps a row sane if that ever broke.
        shown = 0 if v.holdout else row.visitors
        row.ctr = min(row.clicks / shown, 1.0) if shown else 0.0
        row.ctr_ci = wilson(row.clicks, shown)
        row.atc_rate = min(row.add_to_cart / shown, 1.0) if shown else 0.0
        row.conversion = min(row.converted / row.visitors, 1.0) if row.visitors else 0.0
        row.conversion_ci = wilson(row.converted, row.visitors)
        row.aov = (row.revenue / row.orders).quantize(Decimal("0.01")) if row.orders else Decimal(0)
        out.rows.append(row)
    control = out.rows[0]
    for row in out.rows[1:]:
        low, high, p = two_proportions(
            control.converted, control.visitors, row.converted, row.visitors
        )
        row.lift, row.lift_ci, row.p_value = row.conversion - control.conversion, (low, high), p
    out.winner = _winner(out.rows, alpha)
    return out


def _winner(rows: list[VariantStats], alpha: float) -> Variant | None:
    """The variant whose conversion beats every other one significantly (Bonferroni)."""
    if len(rows) < 2:
        return None
    comparisons = len(rows) - 1
    best = max(rows, key=lambda r: r.conversion)
    for other in rows:
        if other is best:
            continue
        _, _, p = two_proportions(other.converted, other.visitors, best.converted, best.visitors)
        if not (best.conversion > other.conversion and p < alpha / comparisons):
            return None
    return best.variant
