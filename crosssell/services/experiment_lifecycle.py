"""Ending and restarting experiments, with the widgets told at once.

Which experiment runs is cached with the recommendations (``tracking.active_experiment``), so
every change starts a new cache generation when its transaction commits; without it the widgets
would keep assigning visitors to an experiment the merchant ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from crosssell.models import Experiment
from crosssell.services.cache import bump_on_commit


@dataclass
class Restarted:
    """The experiments started again, and those refused with the reason."""

    started: list[Experiment] = field(default_factory=list)
    refused: list[tuple[Experiment, str]] = field(default_factory=list)


@transaction.atomic
def end(experiments: QuerySet[Experiment], now: datetime | None = None) -> list[Experiment]:
    """Stop the running ones among ``experiments`` (``ended_at`` now); returns them. The data
    they collected stays, so their report stays readable."""
    now = now or timezone.now()
    running = list(experiments.filter(is_active=True).select_for_update().order_by("pk"))
    Experiment.objects.filter(pk__in=[e.pk for e in running]).update(is_active=False, ended_at=now)
    for exp in running:
        exp.is_active, exp.ended_at = False, now
    if running:
        bump_on_commit()
    return running


@transaction.atomic
def start_again(experiments: QuerySet[Experiment]) -> Restarted:
    """Run the ended ones among ``experiments`` again, keeping their data and start date (the
    report goes on counting from where it stopped). A placement runs one experiment at a time
    (a database constraint): one that would run beside another on its placement is refused."""
    out = Restarted()
    for exp in experiments.filter(is_active=False).select_for_update().order_by("pk"):
        try:
            with transaction.atomic():  # a savepoint: a refusal keeps the others
                Experiment.objects.filter(pk=exp.pk).update(is_active=True, ended_at=None)
        except IntegrityError:
            other = (
                Experiment.objects.filter(is_active=True, placement=exp.placement)
                .exclude(pk=exp.pk)
                .first()
            )
            where = f"placement “{exp.placement}”" if exp.placement else "every placement"
            running = f"“{other.name}” already runs on {where}" if other else "already running"
            out.refused.append((exp, running))
            continue
        exp.is_active, exp.ended_at = True, None
        out.started.append(exp)
    if out.started:
        bump_on_commit()
    return out
