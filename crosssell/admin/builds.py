"""The builds: history with data size, duration and offline metrics; the diff against the
previous build; "rebuild now", "make live" (roll back or forward); a running build's progress;
and the overview page (coverage, data readiness, metrics over the last builds)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Model, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from crosssell.admin.charts import bars, sparkline
from crosssell.admin.common import log_change
from crosssell.models import Build, Exclusion, Recommendation
from crosssell.permissions import can_see_evidence
from crosssell.services import build_history, dashboard, tuning
from crosssell.services.build import publish
from crosssell.services.ids import parse_id

COUNT_KEYS = ("orders", "lines", "products", "customers")


def human_duration(value: timedelta | None) -> str:
    """``1h 02m``, ``3m 05s``, ``4.2s``; "-" for none."""
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def progress_of(build: Build) -> dict[str, Any]:
    """The build's progress as the page and its poller show it."""
    progress = dict(build.progress or {})
    return {
        "id": build.pk,
        "state": build.state,
        "stage": str(progress.get("stage", "")),
        "percent": float(progress.get("percent", 0) or 0),
        "rows": int(progress.get("rows", 0) or 0),
        "error": build.error,
    }


def curation_min_customers() -> int:
    from crosssell.conf import settings

    return int(settings.MIN_CUSTOMERS)


def _metric_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@admin.register(Build)
class BuildAdmin(admin.ModelAdmin):
    """Build history: state, data size, duration, offline metrics; make one live."""

    list_display = [
        "build_col",
        "state_col",
        "trigger",
        "created_at",
        "duration_col",
        "orders_col",
        "lines_col",
        "products_col",
        "customers_col",
        "recommendations_col",
        "metrics_col",
    ]
    list_filter = ["state", "trigger"]
    actions = ["make_live"]
    change_list_template = "admin/crosssell/build/change_list.html"
    change_form_template = "admin/crosssell/build/change_form.html"
    fields = (
        "state",
        "trigger",
        "task_id",
        "created_at",
        "finished_at",
        "published_at",
        "duration_col",
        "counts_col",
        "metrics_table",
        "parameters",
        "variant",
        "error",
    )
    readonly_fields = fields

    # ----------------------------------------------------------------- columns

    @admin.display(description="build", ordering="-created_at")
    def build_col(self, obj: Build) -> str:
        return f"#{obj.pk}"

    @admin.display(description="state", ordering="state")
    def state_col(self, obj: Build) -> SafeString:
        badge = format_html('<span class="cs-badge cs-state-{}">{}</span>', obj.state, obj.state)
        if obj.state != Build.State.RUNNING:
            return badge
        p = progress_of(obj)
        return format_html(
            '{} <span class="cs-progress-mini" data-cs-progress="{}">{} {}%</span>',
            badge,
            reverse("admin:crosssell_build_progress", args=[obj.pk]),
            p["stage"],
            round(p["percent"]),
        )

    @admin.display(description="duration")
    def duration_col(self, obj: Build) -> str:
        return human_duration(obj.duration)

    def _count(self, obj: Build, key: str) -> str:
        value = (obj.counts or {}).get(key)
        return f"{value:,}" if isinstance(value, int) else "-"

    @admin.display(description="orders")
    def orders_col(self, obj: Build) -> str:
        return self._count(obj, "orders")

    @admin.display(description="lines")
    def lines_col(self, obj: Build) -> str:
        return self._count(obj, "lines")

    @admin.display(description="products")
    def products_col(self, obj: Build) -> str:
        return self._count(obj, "products")

    @admin.display(description="customers")
    def customers_col(self, obj: Build) -> str:
        return self._count(obj, "customers")

    @admin.display(description="recommendations")
    def recommendations_col(self, obj: Build) -> str:
        return self._count(obj, "recommendations")

    @admin.display(description="offline metrics")
    def metrics_col(self, obj: Build) -> SafeString:
        # the scalar figures (the tuning's table has a card of its own on the build's page)
        items = sorted((k, v) for k, v in (obj.metrics or {}).items() if not isinstance(v, dict))
        return format_html_join(
            " ", '<span class="cs-metric">{}&nbsp;<b>{}</b></span>',
            ((k, _metric_text(v)) for k, v in items),
        )  # fmt: skip

    @admin.display(description="data size and output")
    def counts_col(self, obj: Build) -> SafeString:
        return format_html_join(
            "", "<div>{}: <b>{}</b></div>",
            ((k, f"{v:,}" if isinstance(v, int) else v) for k, v in (obj.counts or {}).items()),
        )  # fmt: skip

    @admin.display(description="offline metrics")
    def metrics_table(self, obj: Build) -> SafeString:
        return self.metrics_col(obj)

    # ----------------------------------------------------------------- permissions

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # builds are made by a rebuild ("Rebuild now")

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if isinstance(obj, Build) and obj.state in (Build.State.LIVE, Build.State.RUNNING):
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        queryset.exclude(state__in=[Build.State.LIVE, Build.State.RUNNING]).delete()

    # ----------------------------------------------------------------- actions

    def _publish(self, request: HttpRequest, build: Build) -> bool:
        before = Build.live()
        try:
            publish(build)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return False
        how = (
            "rolled back"
            if before is not None and before.created_at > build.created_at
            else "rolled forward"
            if before is not None and before.pk != build.pk
            else "published"
        )
        note = f"Made live ({how}" + (f" from #{before.pk})" if before else ")")
        log_change(request, [build], note)
        self.message_user(request, f"Build #{build.pk} is live ({how}).")
        return True

    @admin.action(description="Make the selected build live", permissions=["change"])
    def make_live(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            self.message_user(request, "Select exactly one build to make live.", messages.ERROR)
            return
        self._publish(request, chosen[0])

    # ----------------------------------------------------------------- extra views

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        urls: list[Any] = [
            path("overview/", view(self.overview_view), name="crosssell_overview"),
            path("rebuild/", view(self.rebuild_view), name="crosssell_build_rebuild"),
            path("<int:pk>/publish/", view(self.publish_view), name="crosssell_build_publish"),
            path("<int:pk>/progress/", view(self.progress_view), name="crosssell_build_progress"),
        ]
        return urls + super().get_urls()

    def rebuild_view(self, request: HttpRequest) -> HttpResponse:
        """Queue a rebuild ("Rebuild now")."""
        return _rebuild(self, request)

    def publish_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Make one build live: a rollback to an older one or a roll forward."""
        return _publish_view(self, request, pk)

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """The build's state and progress, polled by the page while it runs."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(progress_of(get_object_or_404(Build, pk=pk)))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # A build is read only: its only change is "Make live", a button of its own.
        extra: dict[str, Any] = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            **(extra_context or {}),
        }
        # A malformed id ("x", 5000 digits) is Django's "doesn't exist" redirect, not a 500.
        pk = parse_id(object_id) if object_id else None
        build = Build.objects.filter(pk=pk).first() if pk is not None else None
        if build is not None:
            extra["diff"] = build_history.build_diff(build, limit=30)
            extra["show_evidence"] = can_see_evidence(request.user)
            extra["progress"] = progress_of(build)
            extra["progress_url"] = reverse("admin:crosssell_build_progress", args=[build.pk])
            extra["publish_url"] = reverse("admin:crosssell_build_publish", args=[build.pk])
            extra["can_publish"] = self.has_change_permission(request, build) and build.state in (
                Build.State.READY,
            )
            extra["by_strategy"] = list(
                Recommendation.objects.filter(build=build)
                .values("strategy")
                .annotate(n=Count("id"))
                .order_by("-n")
            )
            extra["tuning"] = tuning.summary(build)
        return super().changeform_view(request, object_id, form_url, extra)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        extra["can_rebuild"] = self.has_change_permission(request)
        extra["running"] = Build.objects.filter(state=Build.State.RUNNING).exists()
        return super().changelist_view(request, extra)

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        """Catalog coverage, data readiness, the live build's age and the metrics' history."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        cov = dashboard.coverage()
        ready = dashboard.readiness()
        history = build_history.metrics_history(12)
        series = build_history.metric_series(history)
        live = ready.live_build
        strategies = []
        if live is not None:
            rows = list(
                Recommendation.objects.filter(build=live)
                .values("strategy")
                .annotate(n=Count("id"))
                .order_by("-n")
            )
            total = sum(r["n"] for r in rows) or 1
            strategies = [(r["strategy"], r["n"] / total, f"{r['n']:,}") for r in rows[:8]]
        coverage_rows = [
            (f"full list ({cov.limit})", cov.full_share, f"{cov.full_share:.0%}"),
            ("at least one real", cov.some_real_share, f"{cov.some_real_share:.0%}"),
            ("only fallbacks", cov.only_fallback_share, f"{cov.only_fallback_share:.0%}"),
        ]
        for build in history:
            build.duration_text = human_duration(build.duration)  # type: ignore[attr-defined]
        coverage_cards = [
            {"label": "full lists", "count": cov.full, "share": cov.full_share, "tone": "good"},
            {
                "label": "some real",
                "count": cov.some_real,
                "share": cov.some_real_share,
                "tone": "ok",
            },
            {
                "label": "fallbacks only",
                "count": cov.only_fallback,
                "share": cov.only_fallback_share,
                "tone": "warn",
            },
        ]
        for card in coverage_cards:
            card["pct"] = f"{card['share']:.0%}"
        readiness_rows = [
            ("Orders", f"{ready.orders:,}", ""),
            (
                "Order lines",
                f"{ready.lines:,}",
                f"{ready.lines / ready.orders:.1f} per order" if ready.orders else "",
            ),
            ("Customers", f"{ready.customers:,}", "distinct people, as the threshold counts"),
            (
                "Products with sales",
                f"{ready.products_with_sales:,}",
                f"{ready.sales_share:.0%} of {ready.products:,} products",
            ),
            ("Sellable products", f"{ready.sellable:,}", ""),
            ("Live build age", human_duration(ready.live_age), ""),
        ]
        warning = ""
        if ready.orders == 0:
            warning = "No orders yet: every widget shows bestsellers until orders come in."
        elif ready.customers < curation_min_customers():
            warning = "Fewer customers than the privacy threshold: no pair can be published yet."
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Cross-sell overview",
            "coverage_cards": coverage_cards,
            "readiness_rows": readiness_rows,
            "readiness_warning": warning,
            "coverage": cov,
            "coverage_chart": bars(coverage_rows),
            "readiness": ready,
            "live": live,
            "live_age": human_duration(ready.live_age),
            "live_duration": human_duration(live.duration) if live else "-",
            "history": history[::-1],
            "charts": [sparkline(name, points) for name, points in series.items()],
            "strategy_chart": bars(strategies) if strategies else None,
            "running": Build.objects.filter(state=Build.State.RUNNING).first(),
            "exclusions": Exclusion.objects.count(),
            "can_rebuild": self.has_change_permission(request),
            "curated": dict(
                Recommendation.objects.filter(build__isnull=True)
                .values_list("status")
                .annotate(n=Count("id"))
                .values_list("status", "n")
            ),
        }
        return TemplateResponse(request, "admin/crosssell/overview.html", context)


def _rebuild(model_admin: BuildAdmin, request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    from crosssell import tasks

    try:
        # In eager mode (the embedded default) this runs the whole rebuild right here.
        result = tasks.rebuild.delay(trigger="admin")
    except Exception as exc:  # the broker is down, or the eager rebuild failed
        model_admin.message_user(request, f"The rebuild could not start: {exc}", messages.ERROR)
    else:
        build = (
            Build.objects.filter(task_id=result.id).first()
            or Build.objects.order_by("-created_at", "-pk").first()
        )
        if build is not None:
            log_change(request, [build], f"Rebuild requested (task {result.id})")
        model_admin.message_user(request, "A rebuild is queued; its progress shows below.")
    return HttpResponseRedirect(reverse("admin:crosssell_build_changelist"))


def _publish_view(model_admin: BuildAdmin, request: HttpRequest, pk: int) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    build = get_object_or_404(Build, pk=pk)
    if not model_admin.has_change_permission(request, build):
        raise PermissionDenied
    model_admin._publish(request, build)
    return HttpResponseRedirect(reverse("admin:crosssell_build_change", args=[build.pk]))
