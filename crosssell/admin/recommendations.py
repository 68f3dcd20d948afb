"""The recommendations changelist: every row with its evidence, filters, and the merchant's
pin / reject / reset actions; the bulk pinning rule; the endpoint the product panel posts to."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION
from django.core.exceptions import BadRequest, PermissionDenied
from django.db.models import Model, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from crosssell.admin.common import (
    RefusedInputMixin,
    SafeAutocompleteMixin,
    evidence_value,
    log_change,
    product_admin_url,
    product_label,
    product_model_registered,
    product_search_fields,
    safe_next,
)
from crosssell.conf import settings
from crosssell.models import Build, Recommendation, get_product_model
from crosssell.services import curation, curation_rules
from crosssell.services.catalog import get_catalog
from crosssell.services.ids import parse_id

Status = Recommendation.Status
KIND_SHORT = {"bought_together": "together", "also_bought": "also bought", "similar": "similar"}
OPS: dict[str, str] = {"pin": Status.PINNED, "reject": Status.REJECTED, "reset": Status.AUTO}
DONE: dict[str, str] = {
    Status.PINNED: "Pinned",
    Status.REJECTED: "Rejected",
    Status.AUTO: "Reset to automatic",
}


class BuildFilter(admin.SimpleListFilter):
    """The live build, the merchant's own rows, or one build."""

    title = "build"
    parameter_name = "build"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        builds = Build.objects.exclude(state=Build.State.FAILED).order_by("-created_at", "-pk")
        return [("live", "Live build"), ("curated", "Merchant's decisions")] + [
            (str(b.pk), f"#{b.pk} ({b.state})") for b in builds[:20]
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "live":
            return queryset.filter(build__state=Build.State.LIVE)
        if value == "curated":
            return queryset.filter(build__isnull=True)
        build_id = parse_id(value)
        if build_id is not None:
            return queryset.filter(build_id=build_id)
        if value:  # ?build=<20 digits> or ?build=x: not a build's id, a malformed request
            raise BadRequest(f"build={value[:30]!r}: not a build (live, curated or an id).")
        return queryset


class SourceCategoryFilter(admin.SimpleListFilter):
    """The source product's category, among the catalog's (``Catalog.category_names``; with
    django-oscar, the paths of Oscar's tree, a product with several under each)."""

    title = "category"
    parameter_name = "category"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in get_catalog().category_names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value and "\x00" in value:  # PostgreSQL refuses NUL in a query; no category has one
            return queryset.none()
        if value:
            # (no filter at all when the catalog has no categories)
            return queryset.filter(get_catalog().category_q(value, "source__"))
        return queryset


class CuratedForm(forms.ModelForm):
    """Adding a recommendation by hand, or editing a decision: pinned or rejected only."""

    status = forms.ChoiceField(
        choices=[(Status.PINNED, "pinned"), (Status.REJECTED, "rejected")],
        initial=Status.PINNED,
    )

    class Meta:
        model = Recommendation
        fields = ["source", "target", "kind", "status", "rank"]
        help_texts = {"rank": "Position among this product's pins (0 = first)."}


@admin.register(Recommendation)
class RecommendationAdmin(RefusedInputMixin, SafeAutocompleteMixin, admin.ModelAdmin):
    """Every recommendation with its evidence; pin, reject or reset in bulk."""

    list_display = [
        "source_col",
        "target_col",
        "status_col",
        "score_col",
        "co_count_col",
        "confidence_col",
        "lift_col",
        "customers_col",
        "strategy",
        "kind_col",
        "build_col",
    ]
    list_filter = ["kind", "strategy", "status", BuildFilter, SourceCategoryFilter]
    list_select_related = ["source", "target", "build"]
    list_per_page = 50
    show_full_result_count = False  # a count of millions of rows on every page is not worth it
    raw_id_fields = ["source", "target"]
    actions = ["pin_selected", "reject_selected", "reset_selected"]
    form = CuratedForm
    change_list_template = "admin/crosssell/recommendation/change_list.html"

    # ----------------------------------------------------------------- columns

    @admin.display(description="source", ordering="source")
    def source_col(self, obj: Recommendation) -> SafeString:
        # The first column is the row's link: a product link inside it would nest anchors.
        return product_label(obj.source, link=False)

    @admin.display(description="recommended", ordering="target")
    def target_col(self, obj: Recommendation) -> SafeString:
        return product_label(obj.target)

    @admin.display(description="score", ordering="score")
    def score_col(self, obj: Recommendation) -> str:
        return f"{obj.score:.3f}"

    @admin.display(description="kind", ordering="kind")
    def kind_col(self, obj: Recommendation) -> str:
        return KIND_SHORT.get(obj.kind, obj.kind)

    @admin.display(description="co-count")
    def co_count_col(self, obj: Recommendation) -> str:
        return evidence_value(obj, "co_count")

    @admin.display(description="confidence")
    def confidence_col(self, obj: Recommendation) -> str:
        return evidence_value(obj, "confidence")

    @admin.display(description="lift")
    def lift_col(self, obj: Recommendation) -> str:
        return evidence_value(obj, "lift")

    @admin.display(description="customers")
    def customers_col(self, obj: Recommendation) -> str:
        return evidence_value(obj, "customers")

    @admin.display(description="status", ordering="status")
    def status_col(self, obj: Recommendation) -> SafeString:
        return format_html(
            '<span class="cs-badge cs-status-{}">{}</span>', obj.status, obj.get_status_display()
        )

    @admin.display(description="build", ordering="build")
    def build_col(self, obj: Recommendation) -> SafeString:
        if obj.build is None:
            return mark_safe('<span class="cs-badge cs-status-curated">merchant</span>')
        url = reverse("admin:crosssell_build_change", args=[obj.build.pk])
        return format_html(
            '<a href="{}">#{}</a> <span class="cs-badge cs-state-{}">{}</span>',
            url,
            obj.build.pk,
            obj.build.state,
            obj.build.state,
        )

    # ----------------------------------------------------------------- lists and forms

    def get_search_fields(self, request: HttpRequest | None) -> list[str]:
        fields = product_search_fields()
        return [f"{side}__{f}" for side in ("source", "target") for f in fields]

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        # Only when the product model's admin can be searched (a swapped model may have none).
        return ["source", "target"] if product_model_registered(self.admin_site) else []

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes where the actions show (list or change form); 5.2 has no such argument.
        where = {} if action_location is None else {"action_location": action_location}
        found = super().get_actions(request, **where)
        found.pop("delete_selected", None)  # rows go through reset, never a raw delete
        return found

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        if obj is None:
            return []
        if isinstance(obj, Recommendation) and obj.build_id is None:
            return ["source", "target", "kind", "score", "strategy", "evidence", "build"]
        return [f.name for f in Recommendation._meta.fields if f.name != "id"]

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        if obj is None:
            return ["source", "target", "kind", "status", "rank"]
        return [
            "source",
            "target",
            "kind",
            "status",
            "rank",
            "score",
            "strategy",
            "evidence",
            "build",
        ]

    def get_form(
        self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is not None and getattr(obj, "build_id", None) is not None:
            kwargs["form"] = forms.ModelForm  # a build's row: read only, no curated fields
        return super().get_form(request, obj, change=change, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # A build's rows belong to the build; only a decision can be deleted (= reset).
        if isinstance(obj, Recommendation) and obj.build_id is not None:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: Recommendation, form: Any, change: bool
    ) -> None:
        rank = obj.rank if "rank" in form.changed_data else None
        if change and {"status", "rank"}.isdisjoint(form.changed_data):
            return
        row = curation.set_status(
            obj.source_id, obj.target_id, obj.status, kind=obj.kind, rank=rank
        )
        if row is not None:
            obj.pk, obj.rank, obj.status = row.pk, row.rank, row.status

    def delete_model(self, request: HttpRequest, obj: Recommendation) -> None:
        curation.reset(obj.source_id, obj.target_id, kind=obj.kind)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        curation.curate_rows(queryset.filter(build__isnull=True), Status.AUTO)

    # ----------------------------------------------------------------- bulk actions

    def _curate(self, request: HttpRequest, queryset: QuerySet[Any], status: str) -> None:
        try:
            done = curation.curate_rows(queryset, status)
        except curation.CurationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        # A reset deletes the decisions themselves: log against rows that still exist.
        alive = [r for r in done if Recommendation.objects.filter(pk=r.pk).exists()]
        log_change(request, alive, DONE[status])
        self.message_user(request, f"{DONE[status]}: {len(done)} recommendation(s).")

    @admin.action(description="Pin selected recommendations", permissions=["change"])
    def pin_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._curate(request, queryset, Status.PINNED)

    @admin.action(description="Reject selected recommendations", permissions=["change"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._curate(request, queryset, Status.REJECTED)

    @admin.action(description="Reset selected to automatic", permissions=["change"])
    def reset_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._curate(request, queryset, Status.AUTO)

    # ----------------------------------------------------------------- extra views

    def get_urls(self) -> list[URLPattern]:
        urls: list[Any] = [
            path(
                "curate/",
                self.admin_site.admin_view(self.curate_view),
                name="crosssell_recommendation_curate",
            ),
            path(
                "pin-rule/",
                self.admin_site.admin_view(self.pin_rule_view),
                name="crosssell_recommendation_pin_rule",
            ),
        ]
        return urls + super().get_urls()

    @staticmethod
    def _int(request: HttpRequest, name: str) -> int:
        value = parse_id(request.POST.get(name) or request.GET.get(name) or "")
        if value is None:  # not an id the database could hold (20 digits, 5000, "x")
            raise BadRequest(f"Bad {name}: not a product id.")
        return value

    def curate_view(self, request: HttpRequest) -> HttpResponse:
        """Pin, reject or reset one pair (the product panel's buttons post here)."""
        return _curate_view(self, request)

    def pin_rule_view(self, request: HttpRequest) -> HttpResponse:
        """The bulk rule: pin every pair with lift >= X bought by >= N customers."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        can_change = self.has_change_permission(request)
        form = PinRuleForm(request.POST or None)
        preview: curation_rules.RuleResult | None = None
        examples: list[Recommendation] = []
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            if form.is_valid():
                data = form.cleaned_data
                args = (data["min_lift"], data["min_customers"])
                if "apply" in request.POST:
                    result = curation_rules.pin_by_rule(*args, kind=data["kind"])
                    pinned = Recommendation.objects.filter(
                        build__isnull=True, status=Status.PINNED, kind=data["kind"]
                    ).order_by("-updated_at", "-pk")[: result.pinned]
                    log_change(
                        request,
                        list(pinned),
                        f"Pinned by rule: lift >= {args[0]}, customers >= {args[1]}",
                        ADDITION,
                    )
                    self.message_user(
                        request,
                        f"Pinned {result.pinned} pair(s); {result.already_pinned} were already "
                        f"pinned, {result.skipped_rejected} rejected pair(s) left alone.",
                    )
                    return HttpResponseRedirect(
                        reverse("admin:crosssell_recommendation_changelist") + "?status=pinned"
                    )
                preview = curation_rules.pin_by_rule(*args, kind=data["kind"], dry_run=True)
                examples = list(
                    curation_rules.rule_candidates(*args, kind=data["kind"]).select_related(
                        "source", "target"
                    )[:20]
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Pin pairs by rule",
            "form": form,
            "preview": preview,
            "examples": examples,
            "can_change": can_change,
            "live": Build.live(),
        }
        # A refused form is shown again with its errors, answered 400.
        status = 400 if request.method == "POST" and form.errors else 200
        return TemplateResponse(
            request, "admin/crosssell/recommendation/pin_rule.html", context, status=status
        )


#: Above any count of customers a shop has; keeps the JSON comparison within 32 bits.
MAX_CUSTOMERS = 2**31 - 1


class PinRuleForm(forms.Form):
    """Thresholds of the bulk pinning rule."""

    min_lift = forms.FloatField(label="Lift at least", min_value=0, initial=2.0)
    min_customers = forms.IntegerField(
        label="Bought together by at least", min_value=1, max_value=MAX_CUSTOMERS
    )
    kind = forms.ChoiceField(choices=Recommendation.Kind.choices)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["min_customers"].initial = max(int(settings.MIN_CUSTOMERS), 1)
        self.fields["min_customers"].help_text = "distinct customers"


def _curate_view(model_admin: RecommendationAdmin, request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    op = request.POST.get("op") or request.GET.get("op") or ""
    if op not in OPS:
        raise PermissionDenied("Unknown operation.")
    source_id = model_admin._int(request, "source")
    target_id = model_admin._int(request, "target")
    kind = (
        request.POST.get("kind") or request.GET.get("kind") or Recommendation.Kind.BOUGHT_TOGETHER
    )
    source = get_product_model()._default_manager.filter(pk=source_id).first()
    fallback = (
        product_admin_url(source)
        if source is not None
        else reverse("admin:crosssell_recommendation_changelist")
    )
    try:
        row = curation.set_status(source_id, target_id, OPS[op], kind=kind)
    except curation.CurationError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(safe_next(request, fallback))
    target = get_product_model()._default_manager.filter(pk=target_id).first()
    message = f"{DONE[OPS[op]]}: {target} with {source}"
    logged = (
        [row]
        if row is not None
        else list(
            Recommendation.objects.filter(
                build__state=Build.State.LIVE, kind=kind, source_id=source_id, target_id=target_id
            )
        )
    )
    log_change(request, logged or ([source] if source is not None else []), message)
    model_admin.message_user(request, message + ".")
    return HttpResponseRedirect(safe_next(request, fallback))
