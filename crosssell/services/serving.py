"""Serving: precomputed rows of the live build, with the live business rules applied.

No model is scored here. A widget costs one indexed query for its ranked ids (or one cache hit)
and one query for the products; the fallbacks (category, then global bestsellers) are cached
lists, so every list for a sellable product is full.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, Count, IntegerField, Model, Q, Value, When

from crosssell.conf import settings
from crosssell.models import Build, Purchase, Recommendation, product_field
from crosssell.services import cache as cs_cache
from crosssell.services.products import products, sellable_products, sellable_q

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

    Never a source, an excluded id, a rejected pair or an unsellable product; pinned pairs
    come first; category and then global bestsellers fill what the live build leaves empty.
    """
    limit = settings.DEFAULT_LIMIT if limit is None else limit
    banned = {int(s) for s in source_ids} | {int(e) for e in exclude}
    slots = [s for s in ranked_slots(source_ids, kind) if s.product_id not in banned]
    candidates = slots[: limit * 3]
    taken = {s.product_id for s in candidates}
    fallback_lists = ([bestseller_ids(category)] if category else []) + [bestseller_ids()]
    for strategy, ids in zip(
        (["category_bestsellers"] if category else []) + ["bestsellers"],
        fallback_lists,
        strict=True,
    ):
        for pid in ids:
            if len(candidates) >= limit * 3:
                break
            if pid not in banned and pid not in taken:
                taken.add(pid)
                candidates.append(Slot(pid, 0.0, strategy))
    loaded = sellable_products().in_bulk([s.product_id for s in candidates])
    items = [Item(loaded[s.product_id], s) for s in candidates if s.product_id in loaded]
    return items[:limit]


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
