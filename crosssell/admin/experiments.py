"""The experiments: define the variants, read the report, end or restart a test.

The change page shows :func:`crosssell.services.experiments.report` as a table (every metric,
rates with their 95% interval), the verdict (the winner with its lift, interval and p-value, or
"no significant difference yet" with the visitors it would take) and a chart of each variant's
conversion with its interval, drawn on the server like the overview's charts. The report is a
few grouped queries, so the page costs the same with ten visitors or ten million. Reading needs
the view permission; ending and restarting need the change permission.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from crosssell.admin.charts import interval_bars
from crosssell.admin.common import (
    ParentConstraintsFormSet,
    RefusedInputMixin,
    log_change,
    safe_next,
)
from crosssell.models import Experiment, Variant
from crosssell.services import experiment_lifecycle
from crosssell.services.experiment_review import MIN_RELATIVE_LIFT, Comparison, Verdict, verdict
from crosssell.services.experiments import Report, VariantStats, report, reports

NO_DIFFERENCE = "no significant difference yet"
DASH = "-"


# --------------------------------------------------------------------------- formatting


def percent(value: float) -> str:
    """A rate as a percentage: one decimal, two below 1% (so 0.35% and 0.42% stay apart)."""
    x = 100 * value
    return f"{x:.1f}%" if x == 0 or abs(x) >= 0.995 else f"{x:.2f}%"


def interval(ci: tuple[float, float]) -> str:
    """A 95% interval of a rate: ``1.9% to 7.7%``."""
    return f"{percent(ci[0])} to {percent(ci[1])}"


def points(value: float, *, signed: bool = True) -> str:
    """A difference of two rates in percentage points: ``+1.5``, ``-0.42``."""
    x = 100 * value
    digits = 1 if x == 0 or abs(x) >= 0.995 else 2
    return f"{x:+.{digits}f}" if signed else f"{abs(x):.{digits}f}"


def p_text(p: float) -> str:
    """``p = 0.0123``, or ``p < 0.001``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def money(value: Decimal) -> str:
    """An amount with two decimals and thousands separators (the shop's currency)."""
    return f"{value:,.2f}"


def count(value: int) -> str:
    return f"{value:,}"


# --------------------------------------------------------------------------- what the page shows


@dataclass(frozen=True)
class ReportRow:
    """One variant's row of the table, every number already formatted."""

    pk: int
    name: str
    arm: str
    weight: str
    is_control: bool
    is_winner: bool
    holdout: bool
    visitors: str
    impressions: str
    clicks: str
    ctr: str
    ctr_ci: str
    add_to_cart: str
    atc_rate: str
    converted: str
    conversion: str
    conversion_ci: str
    orders: str
    revenue: str
    attributed_revenue: str
    aov: str
    lift: str
    lift_ci: str
    p_value: str


@dataclass(frozen=True)
class VerdictText:
    """The verdict in words: a tone for its colour, the line, what it rests on, and a hint."""

    tone: str
    headline: str
    detail: str
    hint: str


def report_rows(rep: Report) -> list[ReportRow]:
    """The table's rows in the report's order (the control first)."""
    total_weight = sum(r.variant.weight for r in rep.rows) or 1
    winner = rep.winner.pk if rep.winner is not None else None
    rows = []
    for i, s in enumerate(rep.rows):
        v = s.variant
        shown = not v.holdout  # a holdout sees no widget: no click-through to speak of
        rows.append(
            ReportRow(
                pk=v.pk,
                name=v.name,
                arm="holdout (no widget)" if v.holdout else (v.strategy or "live blend"),
                weight=f"{v.weight} ({v.weight / total_weight:.0%} of visitors)",
                is_control=i == 0,
                is_winner=v.pk == winner,
                holdout=v.holdout,
                visitors=count(s.visitors),
                impressions=count(s.impressions),
                clicks=count(s.clicks),
                ctr=percent(s.ctr) if shown else DASH,
                ctr_ci=interval(s.ctr_ci) if shown and s.impressions else "",
                add_to_cart=count(s.add_to_cart),
                atc_rate=percent(s.atc_rate) if shown else DASH,
                converted=count(s.converted),
                conversion=percent(s.conversion),
                conversion_ci=interval(s.conversion_ci) if s.visitors else "",
                orders=count(s.orders),
                revenue=money(s.revenue),
                attributed_revenue=money(s.attributed_revenue),
                aov=money(s.aov),
                lift=_lift(s, i),
                lift_ci=(
                    f"{points(s.lift_ci[0])} to {points(s.lift_ci[1])}"
                    if i and s.lift_ci is not None
                    else ""
                ),
                p_value=p_text(s.p_value) if i and s.p_value is not None else "",
            )
        )
    return rows


def _lift(s: VariantStats, index: int) -> str:
    if index == 0:
        return "control"
    return f"{points(s.lift)} pts" if s.lift is not None else DASH


def _comparison(c: Comparison) -> str:
    low, high = c.ci
    return (
        f"{points(c.difference)} points (95% CI {points(low)} to {points(high)}), "
        f"{p_text(c.p_value)}"
    )


def verdict_text(v: Verdict) -> VerdictText:
    """The winner line, or "no significant difference yet" with the leader and a hint."""
    if v.winner is not None:
        w = v.winner
        level = (
            f"Significant against every other variant at the 5% level, Bonferroni-corrected for "
            f"{v.comparisons} comparisons (p < {v.alpha:.3g} each)."
            if v.comparisons > 1
            else "Significant at the 5% level."
        )
        return VerdictText(
            "good",
            f"{w.better.variant.name} converts better than {w.worse.variant.name}: "
            f"{_comparison(w)}",
            f"Conversion {percent(w.better.conversion)} against {percent(w.worse.conversion)}. "
            + level,
            "",
        )
    if v.leader is None:
        if v.variants < 2:
            detail = "An experiment needs at least two variants to compare."
        else:
            detail = "No visitor has been in the experiment yet."
        return VerdictText("warn", "No significant difference yet.", detail, "")
    lead = v.leader
    if lead.difference > 0:
        needed = (
            f"p < {v.alpha:.3g} (the 5% level split over {v.comparisons} comparisons)"
            if v.comparisons > 1
            else "p < 0.05"
        )
        detail = (
            f"Best so far: {lead.better.variant.name} against {lead.worse.variant.name}, "
            f"{_comparison(lead)}; a winner needs {needed}."
        )
    else:
        detail = "Every variant converts alike so far."
    return VerdictText("warn", "No significant difference yet.", detail, _hint(v))


def _hint(v: Verdict) -> str:
    s = v.sample_size
    if s is None:
        return "Too early for a sample-size estimate: no visitor has bought anything yet."
    why = (
        "the largest difference seen so far"
        if s.observed
        else f"a {MIN_RELATIVE_LIFT:.0%} relative lift; the differences seen so far are smaller"
    )
    text = (
        f"To detect a difference of {points(s.difference, signed=False)} points from "
        f"{percent(s.baseline)} ({why}) with {s.power:.0%} power, each variant needs about "
        f"{s.per_variant:,} visitors; the smallest has {s.smallest:,} so far."
    )
    if s.smallest >= s.per_variant:
        text += " Every variant has that many already: a real difference, if any, is smaller."
    return text


def conversion_chart(rep: Report) -> SafeString:
    """Each variant's conversion as a bar with its 95% interval, the winner marked."""
    rows = [(s.variant.name, s.conversion, *s.conversion_ci) for s in rep.rows]
    winner = next(
        (i for i, s in enumerate(rep.rows) if rep.winner and s.variant.pk == rep.winner.pk), None
    )
    return interval_bars(
        "Conversion rate per variant with its 95% confidence interval",
        rows,
        fmt=percent,
        highlight=winner,
    )


# --------------------------------------------------------------------------- the admin


class VariantInline(admin.TabularInline):
    """The arms of the experiment; the first one is the control every other is compared with."""

    model = Variant
    formset = ParentConstraintsFormSet
    fields = ["name", "strategy", "holdout", "weight"]
    extra = 0
    min_num = 0

    def get_extra(self, request: HttpRequest, obj: Model | None = None, **kwargs: Any) -> int:
        return 2 if obj is None else 0  # a new experiment: room for A and B

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Each row prints its variant, whose name includes the experiment's: one query, not one
        # per variant.
        return super().get_queryset(request).select_related("experiment")


class ExperimentForm(forms.ModelForm):
    """Says which experiment holds the placement instead of naming the database constraint."""

    class Meta:
        model = Experiment
        fields = ["name", "placement", "is_active", "started_at", "ended_at"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("is_active") and "placement" in data:
            other = (
                Experiment.objects.filter(is_active=True, placement=data["placement"])
                .exclude(pk=self.instance.pk)
                .first()
            )
            if other is not None:
                self.add_error(
                    "is_active",
                    f"“{other.name}” already runs on this placement: end it first, or save this "
                    "one inactive.",
                )
        return data


#: Where the list page keeps each listed experiment's report.
REPORT_ATTR = "_crosssell_report"


class ExperimentChangeList(ChangeList):
    """The list page, with the reports of its experiments computed together (three grouped
    queries, whatever the number listed and their traffic)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        found = reports(self.result_list)
        for obj in self.result_list:
            setattr(obj, REPORT_ATTR, found[obj.pk])


@admin.register(Experiment)
class ExperimentAdmin(RefusedInputMixin, admin.ModelAdmin):
    """A/B tests of the widgets: variants inline, the report and a chart on the change page."""

    form = ExperimentForm
    inlines = [VariantInline]
    list_display = ["name", "placement_col", "is_active", "started_at", "ended_at", "winner_col"]
    list_filter = ["is_active", "placement"]
    search_fields = ["name"]
    ordering = ["-is_active", "-started_at", "-pk"]
    actions = ["end_experiment", "start_again"]
    change_form_template = "admin/crosssell/experiment/change_form.html"
    list_per_page = 50

    # ----------------------------------------------------------------- columns

    @admin.display(description="placement", ordering="placement")
    def placement_col(self, obj: Experiment) -> str:
        return obj.placement or "every placement"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ExperimentChangeList

    @admin.display(description="winner")
    def winner_col(self, obj: Experiment) -> SafeString | str:
        # ExperimentChangeList computed it with the page's others; report() only for an
        # experiment listed some other way.
        winner = (getattr(obj, REPORT_ATTR, None) or report(obj)).winner
        if winner is None:
            return NO_DIFFERENCE
        return format_html('<span class="cs-badge cs-state-live">{}</span>', winner.name)

    # ----------------------------------------------------------------- forms

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        if obj is None:
            return ["name", "placement", "is_active", "started_at"]
        return ["name", "placement", "is_active", "started_at", "ended_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        # Running and stopping go through "End experiment" / "Start again", which tell the
        # widgets at once and keep the dates consistent.
        return [] if obj is None else ["is_active", "started_at", "ended_at"]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Model | None = None,
    ) -> HttpResponse:
        if isinstance(obj, Experiment) and obj.pk is not None:
            context.update(self.report_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def report_context(self, request: HttpRequest, obj: Experiment) -> dict[str, Any]:
        """The report's table, verdict and chart (shown with the view permission alone)."""
        rep = report(obj)
        return {
            "report_rows": report_rows(rep),
            "verdict": verdict_text(verdict(rep)),
            "conversion_chart": conversion_chart(rep) if rep.rows else None,
            "can_run": self.has_change_permission(request, obj),
            "end_url": reverse("admin:crosssell_experiment_end", args=[obj.pk]),
            "start_url": reverse("admin:crosssell_experiment_start", args=[obj.pk]),
        }

    # ----------------------------------------------------------------- actions

    def _end(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        ended = experiment_lifecycle.end(queryset)
        log_change(request, ended, "Ended the experiment")
        if ended:
            names = ", ".join(e.name for e in ended)
            self.message_user(request, f"Ended: {names}. Their reports stay readable.")
        else:
            self.message_user(request, "None of them was running.", messages.WARNING)

    def _start(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        done = experiment_lifecycle.start_again(queryset)
        log_change(request, done.started, "Started the experiment again")
        if done.started:
            names = ", ".join(e.name for e in done.started)
            self.message_user(request, f"Running again (its data so far is kept): {names}.")
        for exp, reason in done.refused:
            self.message_user(request, f"“{exp.name}” not started: {reason}.", messages.ERROR)
        if not done.started and not done.refused:
            self.message_user(request, "All of them were running already.", messages.WARNING)

    @admin.action(description="End the selected experiments", permissions=["change"])
    def end_experiment(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._end(request, queryset)

    @admin.action(
        description="Start the selected experiments again (keeps their data)",
        permissions=["change"],
    )
    def start_again(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._start(request, queryset)

    # ----------------------------------------------------------------- the change page's buttons

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        urls: list[Any] = [
            path("<int:pk>/end/", view(self.end_view), name="crosssell_experiment_end"),
            path("<int:pk>/start/", view(self.start_view), name="crosssell_experiment_start"),
        ]
        return urls + super().get_urls()

    def _run_view(self, request: HttpRequest, pk: int, start: bool) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        exp = get_object_or_404(Experiment, pk=pk)
        if not self.has_change_permission(request, exp):
            raise PermissionDenied
        queryset = Experiment.objects.filter(pk=exp.pk)
        (self._start if start else self._end)(request, queryset)
        default = reverse("admin:crosssell_experiment_change", args=[exp.pk])
        return HttpResponseRedirect(safe_next(request, default))

    def end_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The change page's "End experiment": the list's action, for this one."""
        return self._run_view(request, pk, start=False)

    def start_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The change page's "Start again": the list's action, for this one."""
        return self._run_view(request, pk, start=True)
