"""The product's admin page: its recommendations in serving order with the merchant's actions,
and the merchant's own rows (add by hand with an autocomplete).

For the default product model crosssell registers :class:`ProductAdmin`. A shop with its own
product model adds the mixin and the inline to its own admin::

    from crosssell.admin import CrosssellProductAdminMixin

    @admin.register(Item)
    class ItemAdmin(CrosssellProductAdminMixin, admin.ModelAdmin):
        search_fields = ["title", "code"]  # the autocomplete searches these
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from crosssell.admin.common import (
    SafeAutocompleteMixin,
    product_label,
    product_model_registered,
)
from crosssell.conf import settings
from crosssell.models import Recommendation
from crosssell.permissions import can_see_evidence
from crosssell.services import curation, dashboard
from crosssell.services.dashboard import FALLBACK_STRATEGIES

Status = Recommendation.Status
_request: ContextVar[HttpRequest | None] = ContextVar("crosssell_admin_request", default=None)
PANEL_FIELD = "crosssell_recommendations"


class CuratedFormSet(BaseInlineFormSet):
    """Saves the merchant's rows through the curation service (live build and cache too)."""

    def clean(self) -> None:
        super().clean()
        # The source is not a field of the inline's forms, so the model's "not itself"
        # constraint is not checked by them: refuse it here rather than in the save (a 500).
        for form in self.forms:
            target = getattr(form, "cleaned_data", {}).get("target")
            if (
                target is not None
                and self.instance.pk is not None
                and target.pk == self.instance.pk
            ):
                form.add_error("target", "A product cannot be recommended with itself.")

    def save_new(self, form: forms.ModelForm, commit: bool = True) -> Any:
        obj = form.instance
        rank = obj.rank if "rank" in form.changed_data else None
        return curation.set_status(
            self.instance.pk, obj.target_id, obj.status, kind=obj.kind, rank=rank
        )

    def save_existing(self, form: forms.ModelForm, obj: Any, commit: bool = True) -> Any:
        if {"target", "kind"} & set(form.changed_data):
            # Another pair: forget the old decision, make the new one.
            curation.reset(self.instance.pk, form.initial["target"], kind=form.initial["kind"])
            return curation.set_status(self.instance.pk, obj.target_id, obj.status, kind=obj.kind)
        rank = obj.rank if "rank" in form.changed_data else None
        return curation.set_status(
            self.instance.pk, obj.target_id, obj.status, kind=obj.kind, rank=rank
        )

    def delete_existing(self, obj: Any, commit: bool = True) -> None:
        if commit:
            curation.reset(obj.source_id, obj.target_id, kind=obj.kind)


class CuratedInline(SafeAutocompleteMixin, admin.TabularInline):
    """The merchant's own decisions for this product: pins (in order) and rejections."""

    model = Recommendation
    fk_name = "source"
    formset = CuratedFormSet
    fields = ["target", "kind", "status", "rank"]
    raw_id_fields = ["target"]
    extra = 1
    verbose_name = "merchant's recommendation"
    verbose_name_plural = "Merchant's recommendations (pinned in this order, or rejected)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(build__isnull=True).select_related("target")

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        return ["target"] if product_model_registered(self.admin_site) else []

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "status":
            kwargs["choices"] = [(Status.PINNED, "pinned"), (Status.REJECTED, "rejected")]
            kwargs["initial"] = Status.PINNED
        return super().formfield_for_choice_field(db_field, request, **kwargs)


class CrosssellProductAdminMixin:
    """Adds the recommendations panel and the merchant's rows to a product ``ModelAdmin``."""

    crosssell_kinds: tuple[str, ...] = (
        Recommendation.Kind.BOUGHT_TOGETHER,
        Recommendation.Kind.ALSO_BOUGHT,
    )
    crosssell_panel_title = "Recommendations"

    def get_ordering(self, request: HttpRequest) -> Any:
        # The recommendations' product pickers page through this admin's search (Django's
        # autocomplete): a shop that orders its products nowhere gets the list's own default,
        # newest first, so that those pages are stable.
        ordering = super().get_ordering(request)  # type: ignore[misc]
        return ordering or self.model._meta.ordering or ["-pk"]  # type: ignore[attr-defined]

    def get_inlines(self, request: HttpRequest, obj: Model | None) -> list[Any]:
        inlines = list(super().get_inlines(request, obj))  # type: ignore[misc]
        if obj is not None and CuratedInline not in inlines:
            inlines.append(CuratedInline)
        return inlines

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return [*fields, PANEL_FIELD] if obj is not None else fields

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        if obj is None:
            return fieldsets
        cleaned = [
            (name, {**opts, "fields": [f for f in opts["fields"] if f != PANEL_FIELD]})
            for name, opts in fieldsets
        ]
        panel = (self.crosssell_panel_title, {"fields": [PANEL_FIELD], "classes": ["cs-panel"]})
        return [*cleaned, panel]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The panel (a read-only field) is rendered without the request; it needs the user.
        token = _request.set(request)
        try:
            response: HttpResponse = super().changeform_view(  # type: ignore[misc]
                request, object_id, form_url, extra_context
            )
            if hasattr(response, "render"):
                response.render()
            return response
        finally:
            _request.reset(token)

    @admin.display(description="")
    def crosssell_recommendations(self, obj: Model) -> SafeString:
        request = _request.get()
        can_change = bool(
            request is not None and request.user.has_perm("crosssell.change_recommendation")
        )
        panels = []
        for kind in self.crosssell_kinds:
            panel = dashboard.product_panel(obj, kind=kind)
            shown_ids = {i.slot.product_id for i in panel.shown}
            decided = {r.target_id: r for r in panel.curated}
            shown = [
                {
                    "position": pos,
                    "product": item.product,
                    "label": product_label(item.product),
                    "slot": item.slot,
                    "fallback": item.slot.strategy in FALLBACK_STRATEGIES,
                    "decision": decided.get(item.slot.product_id),
                    "excluded": item.slot.product_id in panel.excluded,
                }
                for pos, item in enumerate(panel.shown, 1)
            ]
            rows = [
                {
                    "row": row,
                    "label": product_label(row.target),
                    "shown": row.target_id in shown_ids,
                    "fallback": row.strategy in FALLBACK_STRATEGIES,
                    "excluded": row.target_id in panel.excluded,
                }
                for row in panel.live_rows
            ]
            panels.append(
                {
                    "kind": kind,
                    "kind_label": Recommendation.Kind(kind).label,
                    "shown": shown,
                    "rows": rows,
                    "rejected": [r for r in panel.curated if r.status == Status.REJECTED],
                    "limit": settings.DEFAULT_LIMIT,
                }
            )
        html = render_to_string(
            "admin/crosssell/product_panel.html",
            {
                "panels": panels,
                "source": obj,
                "can_change": can_change,
                # Customers, lift, co-counts (and the score, a co-count for most strategies):
                # for those who may view recommendations, not for every product editor.
                "show_evidence": request is not None and can_see_evidence(request.user),
                "curate_url": reverse("admin:crosssell_recommendation_curate"),
                "next": request.get_full_path() if request is not None else "",
                "changelist_url": reverse("admin:crosssell_recommendation_changelist")
                + f"?source__id__exact={obj.pk}",
            },
        )
        return mark_safe(html)
