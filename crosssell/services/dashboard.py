"""The admin's figures: catalog coverage, readiness of the order history, a product's panel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Model, Q
from django.utils import timezone

from crosssell.conf import settings
from crosssell.engine.registry import FALLBACK_STRATEGIES
from crosssell.models import Build, Purchase, Recommendation
from crosssell.services.curation import _curated
from crosssell.services.exclusions import excluded_targets
from crosssell.services.identity import identity_expression
from crosssell.services.products import products, sellable_products, sellable_q
from crosssell.services.serving import Item, category_of, recommend

Kind = Recommendation.Kind
Status = Recommendation.Status
FBT = Kind.BOUGHT_TOGETHER


@dataclass(frozen=True)
class Coverage:
    """How many sellable products get real recommendations (not only fallbacks)."""

    sellable: int
    full: int  # a full widget of real recommendations
    some_real: int  # at least one
    limit: int

    @property
    def only_fallback(self) -> int:
        return self.sellable - self.some_real

    def share(self, value: int) -> float:
        return value / self.sellable if self.sellable else 0.0

    @property
    def full_share(self) -> float:
        return self.share(self.full)

    @property
    def some_real_share(self) -> float:
        return self.share(self.some_real)

    @property
    def only_fallback_share(self) -> float:
        return self.share(self.only_fallback)


def coverage(kind: str = FBT, limit: int | None = None) -> Coverage:
    """Share of sellable products whose widget is full of, has some, or has no real
    recommendations.

    A real recommendation is a pinned pair or a live, not rejected row of a non-fallback
    strategy (:data:`FALLBACK_STRATEGIES`) whose target is sellable. Three aggregate queries.

    Parameters
    ----------
    kind
        The recommendation kind.
    limit
        The widget's length (default ``CROSSSELL_DEFAULT_LIMIT``).
    """
    limit = int(settings.DEFAULT_LIMIT if limit is None else limit)
    sellable = sellable_products().count()
    real = (
        Recommendation.objects.filter(kind=kind)
        .filter(
            Q(build__state=Build.State.LIVE, status__in=[Status.AUTO, Status.PINNED])
            & ~Q(strategy__in=FALLBACK_STRATEGIES)
            | Q(build__isnull=True, status=Status.PINNED)
        )
        .filter(sellable_q("source__"), sellable_q("target__"))
        .values("source_id")
        .annotate(n=Count("target_id", distinct=True))
    )
    return Coverage(sellable, real.filter(n__gte=limit).count(), real.count(), limit)


@dataclass(frozen=True)
class Readiness:
    """How much order history there is to learn from, and how fresh the live build is."""

    products: int
    sellable: int
    orders: int
    lines: int
    customers: int
    products_with_sales: int
    first_purchase: datetime | None
    last_purchase: datetime | None
    live_build: Build | None

    @property
    def live_age(self) -> timedelta | None:
        if self.live_build is None:
            return None
        when = self.live_build.published_at or self.live_build.finished_at
        return timezone.now() - when if when else None

    @property
    def sales_share(self) -> float:
        return self.products_with_sales / self.products if self.products else 0.0


def readiness() -> Readiness:
    """Orders, lines, customers and products with sales; the live build and its age."""
    agg = Purchase.objects.aggregate(
        lines=Count("id"),
        orders=Count("order_ref", distinct=True),
        customers=Count(identity_expression(), distinct=True),  # people, as the threshold
        products_with_sales=Count("product", distinct=True),
        first=Min("purchased_at"),
        last=Max("purchased_at"),
    )
    return Readiness(
        products=products().count(),
        sellable=sellable_products().count(),
        orders=agg["orders"],
        lines=agg["lines"],
        customers=agg["customers"],
        products_with_sales=agg["products_with_sales"],
        first_purchase=agg["first"],
        last_purchase=agg["last"],
        live_build=Build.live(),
    )


# --------------------------------------------------------------------------- product panel


@dataclass(frozen=True)
class ProductPanel:
    """A product's recommendations as the merchant reviews them."""

    shown: list[Item]  # exactly what the widget shows now, in order
    live_rows: list[Recommendation]  # the live build's list, any status
    curated: list[Recommendation]  # the merchant's decisions (no build)
    excluded: set[int]  # shown or listed targets an exclusion forbids


def product_panel(product: Model, *, kind: str = FBT, limit: int | None = None) -> ProductPanel:
    """What the ``kind`` widget of ``product`` shows now (via :func:`serving.recommend`, with
    its fallbacks and their provenance), the live build's rows and the merchant's decisions."""
    limit = int(settings.DEFAULT_LIMIT if limit is None else limit)
    category = category_of(product)  # as the widgets call it
    shown = recommend([product.pk], limit, kind=kind, category=category)
    live_rows = list(
        Recommendation.objects.filter(
            build__state=Build.State.LIVE, kind=kind, source_id=product.pk
        )
        .select_related("target")
        .order_by("rank", "pk")
    )
    curated = list(
        _curated(kind, int(product.pk)).select_related("target").order_by("status", "rank", "pk")
    )
    targets = {i.slot.product_id for i in shown} | {r.target_id for r in live_rows}
    return ProductPanel(shown, live_rows, curated, excluded_targets([product.pk], targets))


__all__ = [
    "FALLBACK_STRATEGIES",
    "Coverage",
    "ProductPanel",
    "Readiness",
    "coverage",
    "product_panel",
    "readiness",
]
