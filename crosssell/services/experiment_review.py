"""Reading an experiment's report the way a merchant decides: who wins and by how much, or,
while nobody does, who leads and how many visitors it would take to know.

:func:`crosssell.services.experiments.report` computes the numbers; this module only chooses
which comparison to state and estimates the sample size, so the admin page (and any other
reader) says the same thing from the same report without querying again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from crosssell.services.experiments import Report, VariantStats, two_proportions

#: The power the sample-size hint plans for (the usual 80%).
POWER = 0.8
#: The smallest lift worth planning for, relative to the baseline: a hint for "the differences
#: seen so far" alone would ask for millions of visitors when two arms happen to be nearly equal.
MIN_RELATIVE_LIFT = 0.10


@dataclass(frozen=True)
class Comparison:
    """``better`` against ``worse`` on conversion: the difference (in proportion, 0.01 is one
    point), its 95% interval and the two-sided p-value of the two-proportion z-test."""

    better: VariantStats
    worse: VariantStats
    difference: float
    ci: tuple[float, float]
    p_value: float


@dataclass(frozen=True)
class SampleSize:
    """Visitors each variant needs to detect ``difference`` around ``baseline`` with ``power``
    at the per-comparison level ``alpha``; ``observed`` says whether ``difference`` is the
    largest one seen so far (else the :data:`MIN_RELATIVE_LIFT` floor)."""

    baseline: float
    difference: float
    observed: bool
    per_variant: int
    smallest: int
    power: float
    alpha: float


@dataclass(frozen=True)
class Verdict:
    """What the report says: the winner against its rival, or the leader so far and a hint."""

    winner: Comparison | None
    leader: Comparison | None
    variants: int
    comparisons: int
    alpha: float
    visitors: int
    sample_size: SampleSize | None


def compare(better: VariantStats, worse: VariantStats) -> Comparison:
    """``better``'s conversion against ``worse``'s (the same test ``report`` uses)."""
    low, high, p = two_proportions(
        worse.converted, worse.visitors, better.converted, better.visitors
    )
    return Comparison(better, worse, better.conversion - worse.conversion, (low, high), p)


def _rival(rows: list[VariantStats], best: VariantStats) -> VariantStats:
    """Whom to state ``best`` against: the control (the first variant), or, when the control
    itself leads, the strongest of the others (the comparison it only just wins)."""
    if best is not rows[0]:
        return rows[0]
    return max(rows[1:], key=lambda r: (r.conversion, -r.variant.pk))


def sample_size(p1: float, p2: float, alpha: float, power: float = POWER) -> int:
    """Visitors per group for a two-sided two-proportion z-test to tell ``p1`` from ``p2``."""
    if p1 == p2:
        raise ValueError("the two proportions must differ")
    normal = NormalDist()
    z_a, z_b = normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)
    mean = (p1 + p2) / 2
    spread = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(spread**2 / (p2 - p1) ** 2)


def _sample_size(report: Report, alpha: float, power: float) -> SampleSize | None:
    rows = report.rows
    control = rows[0]
    visitors = sum(r.visitors for r in rows)
    if control.converted and control.visitors:
        baseline = control.conversion
    elif visitors:  # no conversion in the control yet: the pooled rate is the best guess
        baseline = sum(r.converted for r in rows) / visitors
    else:
        baseline = 0.0
    if not 0 < baseline < 1:
        return None  # no conversion at all yet (or only conversions): nothing to plan from
    seen = max((abs(r.conversion - baseline) for r in rows[1:] if r.visitors), default=0.0)
    floor = MIN_RELATIVE_LIFT * baseline
    difference = max(seen, floor)
    # The rate to tell the baseline from, within [0, 1]: a difference too large to add or to
    # subtract (0.4 against an arm at 100%) plans for the farther end of the range instead.
    if baseline + difference < 1:
        target = baseline + difference
    elif baseline - difference > 0:
        target = baseline - difference
    else:
        target = 1.0 if 1 - baseline >= baseline else 0.0
    return SampleSize(
        baseline=baseline,
        difference=abs(target - baseline),
        observed=seen >= floor,
        per_variant=sample_size(baseline, target, alpha, power),
        smallest=min(r.visitors for r in rows),
        power=power,
        alpha=alpha,
    )


def verdict(report: Report, power: float = POWER) -> Verdict:
    """The winner (``report.winner``) against its rival with the interval and p-value; without
    one, the leader against its rival and the visitors per variant the test would need."""
    rows = report.rows
    comparisons = max(len(rows) - 1, 1)
    alpha = report.alpha / comparisons  # Bonferroni, as report() decides the winner
    visitors = sum(r.visitors for r in rows)
    if len(rows) < 2:
        return Verdict(None, None, len(rows), comparisons, alpha, visitors, None)
    if report.winner is not None:
        best = next(r for r in rows if r.variant.pk == report.winner.pk)
        winner = compare(best, _rival(rows, best))
        return Verdict(winner, None, len(rows), comparisons, alpha, visitors, None)
    leader = None
    if visitors:
        best = max(rows, key=lambda r: (r.conversion, -r.variant.pk))
        leader = compare(best, _rival(rows, best))
    hint = _sample_size(report, alpha, power)
    return Verdict(None, leader, len(rows), comparisons, alpha, visitors, hint)
