"""Serving: precomputed rows of the live build, with the live business rules applied.

No model is scored here. A widget costs one indexed query for its ranked ids (or one cache hit)
and one query for the products; the fallbacks (category, then global bestsellers) are cached
lists, so every list for a sellable product is full.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Case, Count, IntegerField, Model, Q, Value, When

from crosssell.conf import settings
from crosssell.models import Build, Purchase, Recommendation, product_field
from crosssell.services import cache as cs_cache
from crosssell.services import exclusions
from crosssell.services.copurchase import too_few_customers
from crosssell.services.products import (
    is_sellable,
    price_of,
    products,
    sellable_products,
    sellable_q,
)

Kind = Recommendation.Kind
MAX_CART = 100


@dataclass(frozen=True)
class Slot:
    """One recommended product with its provenance."""

    product_id: int
    score: float
    strategy: str
    pinned: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    """A slot with its product loaded, ready to render."""

    product: Model
    slot: Slot


def ranked_slots(source_ids: Sequence[int], kind: str) -> list[Slot]:
    """The live ranked list for one or several sources (a cart), pinned first, rejected out.

    Scores of a target recommended by several sources add up; ties keep the better rank.
    """
    sources = sorted({int(s) for s in source_ids})[:MAX_CART]
    if not sources:
        return []

    def compute() -> list[Slot]:
        qs = (
            Recommendation.objects.filter(kind=kind, source_id__in=sources)
            .filter(
                Q(build__state=Build.State.LIVE)
                | Q(build__isnull=True, status=Recommendation.Status.PINNED)
            )
            .exclude(status=Recommendation.Status.REJECTED)
            .annotate(
                pinned_first=Case(
                    When(status=Recommendation.Status.PINNED, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                )
            )
            .order_by("pinned_first", "rank", "pk")
            .values_list("target_id", "score", "strategy", "status", "evidence", "build_id")
        )
        merged: dict[int, dict[str, Any]] = {}
        for target, score, strategy, status, evidence, build_id in qs:
            if target in sources:
                continue
            entry = merged.get(target)
            pinned = status == Recommendation.Status.PINNED
            if entry is None:
                merged[target] = {
                    "order": len(merged),
                    "score": score,
                    "strategy": "pinned" if pinned and build_id is None else strategy,
                    "pinned": pinned,
                    "evidence": evidence,
                }
            else:
                entry["score"] += score
                entry["pinned"] = entry["pinned"] or pinned
        ordered = sorted(
            merged.items(),
            key=lambda kv: (
                not kv[1]["pinned"],
                -kv[1]["score"] if len(sources) > 1 else 0,
                kv[1]["order"],
            ),
        )
        return [
            Slot(t, float(e["score"]), e["strategy"], e["pinned"], e["evidence"] or {})
            for t, e in ordered
        ]

    key = f"slots:{kind}:{','.join(map(str, sources))}"
    return cs_cache.get_or_set(key, compute)


def bestseller_ids(category: str | None = None, n: int = 60) -> list[int]:
    """The best-selling sellable products, overall or within a category (cached)."""

    def compute() -> list[int]:
        qs = Purchase.objects.filter(sellable_q("product__"))
        cat = product_field("category")
        if category is not None and cat:
            qs = qs.filter(**{f"product__{cat}": category})
        ids = list(
            qs.values("product_id")
            .annotate(n=Count("id"))
            .order_by("-n", "product_id")
            .values_list("product_id", flat=True)[:n]
        )
        if len(ids) < n and category is None:
            # A shop with no orders yet still shows something: its newest sellable products.
            extra = sellable_products().exclude(pk__in=ids).order_by("-pk")
            ids += list(extra.values_list("pk", flat=True)[: n - len(ids)])
        return [int(i) for i in ids]

    return cs_cache.get_or_set(f"bestsellers:{category or ''}:{n}", compute)


def recommend(
    source_ids: Sequence[int],
    limit: int | None = None,
    *,
    kind: str = Kind.BOUGHT_TOGETHER,
    exclude: Iterable[int] = (),
    category: str | None = None,
) -> list[Item]:
    """Up to ``limit`` sellable products for a product (one source) or a cart (several).

    Never a source, an excluded id, a rejected or excluded pair, or an unsellable product;
    pinned pairs come first; a variant stands for its parent when the product model has one;
    with ``CROSSSELL_PRICE_BAND`` a single product's list keeps to a band around its price;
    category and then global bestsellers fill what the live build leaves empty. Two queries
    (the ranked ids, the products), or one on a cache hit.
    """
    limit = settings.DEFAULT_LIMIT if limit is None else limit
    sources = [int(s) for s in source_ids][:MAX_CART]
    banned = set(sources) | {int(e) for e in exclude}
    slots = [s for s in ranked_slots(sources, kind) if s.product_id not in banned]
    candidates = slots[: limit * 3]
    taken = {s.product_id for s in candidates}
    fallbacks = ([("category_bestsellers", category)] if category else []) + [("bestsellers", None)]
    for strategy, cat in fallbacks:
        for pid in bestseller_ids(cat):
            if len(candidates) >= limit * 3 + 4:
                break
            if pid not in banned and pid not in taken:
                taken.add(pid)
                candidates.append(Slot(pid, 0.0, strategy))
    # Every candidate passes the privacy threshold with every source: the build filtered its
    # own rows, but a fallback, or a row of another item of a cart, was never checked. One
    # grouped query (cached), whatever the list length.
    unchecked = [s.product_id for s in candidates]
    if unchecked and settings.MIN_CUSTOMERS > 1:
        key = f"blocked:{','.join(map(str, sorted(sources)))}:{','.join(map(str, unchecked))}"
        blocked = cs_cache.get_or_set(
            key, lambda: too_few_customers(sources, unchecked, settings.MIN_CUSTOMERS)
        )
        candidates = [s for s in candidates if s.product_id not in blocked]
    qs = products()
    parent = product_field("parent")
    if parent and "__" not in parent:
        qs = qs.select_related(parent)
    loaded = qs.in_bulk([s.product_id for s in candidates] + sources)
    rules = exclusions.load_rules()
    src_products = [loaded[s] for s in sources if s in loaded]
    band = _price_band(src_products[0]) if len(src_products) == 1 else None
    items: list[Item] = []
    shown: set[int] = set(banned)
    for slot in candidates:
        product = loaded.get(slot.product_id)
        if product is None:
            continue
        product, slot = _collapse_variant(product, slot)
        if product.pk in shown or not is_sellable(product):
            continue
        if band is not None and not band[0] <= price_of(product) <= band[1]:
            continue
        if rules and any(
            rules.excluded(src.pk, category_of(src) or "", product.pk, category_of(product) or "")
            for src in src_products
        ):
            continue
        shown.add(product.pk)
        items.append(Item(product, slot))
        if len(items) == limit:
            break
    return items


def _price_band(product: Model) -> tuple[Decimal, Decimal] | None:
    band = settings.PRICE_BAND
    if not band:
        return None
    price = price_of(product)
    return price * Decimal(str(band[0])), price * Decimal(str(band[1]))


def _collapse_variant(product: Model, slot: Slot) -> tuple[Model, Slot]:
    """A variant (size, colour) is shown as its parent product."""
    parent = product_field("parent")
    if not parent or "__" in parent:
        return product, slot
    main = getattr(product, parent, None)
    if main is None:
        return product, slot
    return main, Slot(main.pk, slot.score, slot.strategy, slot.pinned, slot.evidence)


def category_of(product: Model) -> str | None:
    """The product's category value, for the category fallback."""
    lookup = product_field("category")
    if not lookup:
        return None
    value: Any = product
    for part in lookup.split("__"):
        value = getattr(value, part, None)
    return str(value) if value else None


__all__ = ["Item", "Slot", "bestseller_ids", "category_of", "products", "ranked_slots", "recommend"]
