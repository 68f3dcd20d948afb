"""Serving: precomputed rows of the live build, with the live business rules applied.

No model is scored here. A widget costs one indexed query for its ranked ids (or one cache hit)
and one query for the products; the fallbacks (category, then global bestsellers) are cached
lists, so every list for a sellable product is full. An experiment variant with a build of its
own is served the same way from that build (``build_id``), every rule unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Model, Q, Value, When

from crosssell.conf import settings
from crosssell.engine.cart import CART_STRATEGY, score_cart
from crosssell.engine.registry import FALLBACK_STRATEGIES as FALLBACK_STRATEGIES
from crosssell.models import Build, Purchase, Recommendation
from crosssell.services import cache as cs_cache
from crosssell.services import cart_store, exclusions
from crosssell.services.catalog import get_catalog
from crosssell.services.copurchase import unsupported
from crosssell.services.products import (
    is_sellable,
    price_of,
    products,
    sellable_products,
    sellable_q,
)

Kind = Recommendation.Kind
MAX_CART = 100
#: Slots chosen beyond the limit, so a product going out of stock does not shorten a list.
SPARE = 2
#: A cart's candidates kept from its summed vectors (the pins come on top).
CART_SLOTS = 100
#: Reciprocal rank fusion of a cart's lists: score = sum of weight / (RRF_K + rank).
RRF_K = 5
#: The weight of a slot of a strategy in :data:`FALLBACK_STRATEGIES` (the engine's one definition).
FALLBACK_WEIGHT = 0.2


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


def ranked_slots(source_ids: Sequence[int], kind: str, build_id: int | None = None) -> list[Slot]:
    """The live ranked list for one or several sources (a cart), pinned first, rejected out.

    For a cart (several sources, bought together), the build's cart vectors are summed
    (:func:`_cart_slots`: one query for all of them, one for the merchant's pins and
    rejections, whatever the cart's size), as the CART-v1 evaluation measures. A build without
    vectors (older than them), or a cart none of whose products has one, gets its sources' lists
    merged by reciprocal rank fusion: strategies score on different scales, so ranks are what
    can be added; a fallback slot (popularity) weighs less than a real companion. With
    ``build_id`` (an experiment variant's build), that build's rows stand in for the live
    build's; the merchant's pins still come first.
    """
    sources = sorted({int(s) for s in source_ids})[:MAX_CART]
    if not sources:
        return []
    built = Q(build__state=Build.State.LIVE) if build_id is None else Q(build_id=int(build_id))
    cart_build = build_id

    def compute() -> list[Slot]:
        if len(sources) > 1 and kind == Kind.BOUGHT_TOGETHER:
            summed = _cart_slots(sources, kind, cart_build)
            if summed is not None:
                return summed
        qs = (
            Recommendation.objects.filter(kind=kind, source_id__in=sources)
            .filter(built | Q(build__isnull=True, status=Recommendation.Status.PINNED))
            .exclude(status=Recommendation.Status.REJECTED)
            .annotate(
                pinned_first=Case(
                    When(status=Recommendation.Status.PINNED, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                )
            )
            # The merchant's own pins first, in the merchant's order, then the build's.
            .order_by("pinned_first", F("build").asc(nulls_first=True), "rank", "pk")
            .values_list("target_id", "score", "strategy", "status", "evidence", "build_id", "rank")
        )
        merged: dict[int, dict[str, Any]] = {}
        for target, score, strategy, status, evidence, build_id, rank in qs:
            if target in sources:
                continue
            pinned = status == Recommendation.Status.PINNED
            weight = FALLBACK_WEIGHT if strategy in FALLBACK_STRATEGIES else 1.0
            entry = merged.setdefault(
                target,
                {
                    "order": len(merged),
                    "score": score,
                    "fused": 0.0,
                    "strategy": "pinned" if pinned and build_id is None else strategy,
                    "pinned": False,
                    "evidence": evidence,
                },
            )
            entry["fused"] += weight / (RRF_K + rank)
            entry["pinned"] = entry["pinned"] or pinned
        several = len(sources) > 1
        ordered = sorted(
            merged.items(),
            key=lambda kv: (
                not kv[1]["pinned"],
                -kv[1]["fused"] if several else 0.0,
                kv[1]["order"],
            ),
        )
        return [
            Slot(t, float(e["fused"] if several else e["score"]), e["strategy"], e["pinned"],
                 e["evidence"] or {})
            for t, e in ordered
        ]  # fmt: skip

    key = f"slots:{kind}:{','.join(map(str, sources))}{_build_key(build_id)}"
    return cs_cache.get_or_set(key, compute)


def _cart_slots(sources: list[int], kind: str, build_id: int | None) -> list[Slot] | None:
    """A cart's slots from the build's cart vectors, or ``None`` when none of its products has
    one (a build older than them: the caller fuses the lists instead).

    One query reads the vectors and the merchant's decisions
    (:func:`crosssell.services.cart_store.read_cart`). The merchant's pins of any cart product
    come first (by their cart score, then in the merchant's order), then the candidates by their
    summed weights (:func:`crosssell.engine.cart.score_cart`, the function the evaluation
    calls); a pair the merchant rejected adds nothing. Each slot's evidence names the most
    customers who bought it with one of the cart's products, so :func:`_choose` re-checks the
    privacy threshold.
    """
    read = cart_store.read_cart(sources, kind, build_id)
    vectors, rejected = read.vectors, read.rejected
    if not vectors:
        return None
    pins: dict[int, tuple[str, dict[str, Any]]] = {}
    for target, row_build, strategy, evidence in read.pins:
        if target not in sources:
            pins.setdefault(target, ("pinned" if row_build is None else strategy, evidence))
    parts = []
    customers: dict[int, int] = {}
    for source in sources:  # ascending, as score_cart adds them
        terms = vectors.get(source)
        if terms is None:
            continue
        if rejected:
            terms = terms[[(source, int(t)) not in rejected for t in terms["product"].tolist()]]
        parts.append((terms["product"], terms["weight"]))
        for target, people in zip(
            terms["product"].tolist(), terms["customers"].tolist(), strict=True
        ):
            customers[target] = max(customers.get(target, 0), people)
    ids, scores = score_cart(parts, sources)
    score_of = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    order = {t: i for i, t in enumerate(pins)}
    pinned = sorted(pins, key=lambda t: (-score_of.get(t, 0.0), order[t]))
    slots = [Slot(t, score_of.get(t, 0.0), pins[t][0], True, pins[t][1]) for t in pinned]
    slots += [
        Slot(t, s, CART_STRATEGY, False, {"customers": customers[t], "cart_score": round(s, 6)})
        for t, s in zip(ids[:CART_SLOTS].tolist(), scores[:CART_SLOTS].tolist(), strict=True)
        if t not in pins
    ]
    return slots


def _build_key(build_id: int | None) -> str:
    """The cache key's part naming a variant's build (none for the live build, whose keys are
    the same as before builds could be named), so lists of two builds never mix."""
    return "" if build_id is None else f":build={int(build_id)}"


def live_build_id() -> int | None:
    """The live build's id (cached per cache generation)."""
    return cs_cache.get_or_set(
        "live_build",
        lambda: Build.objects.filter(state=Build.State.LIVE).values_list("pk", flat=True).first(),
    )


def bestseller_ids(category: str | None = None, n: int = 60) -> list[int]:
    """The best-selling sellable products, overall or within a category (cached)."""

    def compute() -> list[int]:
        qs = Purchase.objects.filter(sellable_q("product__"))
        if category is not None:
            qs = qs.filter(get_catalog().category_q(category, "product__"))
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
    build_id: int | None = None,
) -> list[Item]:
    """Up to ``limit`` sellable products for a product (one source) or a cart (several).

    Never a source, an excluded id, a rejected or excluded pair, a pair bought together by too
    few customers, or an unsellable product; pinned pairs come first; a variant stands for its
    parent when the product model has one; with ``CROSSSELL_PRICE_BAND`` a single product's
    list keeps to a band around its price; category and then global bestsellers fill what the
    live build leaves empty. The chosen ids are cached per cache generation, so a widget costs
    one query (its products) on a cache hit, and a fixed number on a miss.

    ``build_id`` serves another build's rows instead of the live build's (an experiment
    variant's own build, ``Variant.build_id``); ``None`` is the live build.
    """
    limit = settings.DEFAULT_LIMIT if limit is None else limit
    sources = sorted({int(s) for s in source_ids})[:MAX_CART]
    excluded = sorted({int(e) for e in exclude} - set(sources))
    cat_key = hashlib.sha1((category or "").encode()).hexdigest()[:12] if category else ""
    key = (
        f"rec:{kind}:{','.join(map(str, sources))}:{','.join(map(str, excluded))}:{cat_key}:{limit}"
        f"{_build_key(build_id)}"
    )

    fresh: dict[int, Model] = {}  # what a cache miss just loaded, so it is not loaded again

    def choose() -> list[Slot]:
        return _choose(sources, excluded, limit, kind, category, build_id, fresh)

    slots = cs_cache.get_or_set(key, choose)
    items = _load(slots, fresh)
    if len(items) < min(limit, len(slots)):
        items = _load(choose(), fresh)  # a product stopped being sellable since: choose afresh
    return items[:limit]


def _load(slots: list[Slot], known: dict[int, Model] | None = None) -> list[Item]:
    """The slots' products in one query (none for those in ``known``), still sellable."""
    known = known or {}
    loaded = get_catalog().load([s.product_id for s in slots if s.product_id not in known])
    loaded.update((s.product_id, known[s.product_id]) for s in slots if s.product_id in known)
    return [
        Item(loaded[s.product_id], s)
        for s in slots
        if s.product_id in loaded and is_sellable(loaded[s.product_id])
    ]


def _choose(
    sources: list[int],
    excluded: list[int],
    limit: int,
    kind: str,
    category: str | None,
    build_id: int | None = None,
    chosen_products: dict[int, Model] | None = None,
) -> list[Slot]:
    """The ``limit`` best slots (and two spares) that pass every rule; the products shown for
    them are put in ``chosen_products`` when given."""
    catalog = get_catalog()
    # A variant's page reads its parent's list beside its own (the parent's page is where its
    # sales show), and never shows the parent itself.
    parents = {catalog.browsable(p).pk for p in catalog.load(sources).values()} - set(sources)
    lists = sorted(set(sources) | parents)
    # A pair the merchant rejected stays out, even when a fallback proposes it.
    rejected = Recommendation.objects.filter(
        build__isnull=True,
        status=Recommendation.Status.REJECTED,
        kind=kind,
        source_id__in=lists,
    ).values_list("target_id", flat=True)
    banned = set(lists) | set(excluded) | set(rejected)
    pool = [s for s in ranked_slots(lists, kind, build_id) if s.product_id not in banned]
    taken = {s.product_id for s in pool}
    fallbacks = ([("category_bestsellers", category)] if category else []) + [("bestsellers", None)]
    for strategy, cat in fallbacks:
        for pid in bestseller_ids(cat):
            if pid not in banned and pid not in taken:
                taken.add(pid)
                pool.append(Slot(pid, 0.0, strategy))
    # A slot published for its co-purchases is checked again: an erasure may have taken its
    # pair below the threshold since. Nothing else reads the pairs below the threshold (the
    # build and the updates never publish them, the fallbacks are chosen from sales alone), so
    # one order of such a pair changes no list a visitor sees.
    minimum = settings.MIN_CUSTOMERS
    claimed = [s.product_id for s in pool if minimum > 1 and _customers(s) >= minimum]
    if claimed:
        dropped = unsupported(lists, claimed, minimum)  # a parent's pairs count for its variant
        pool = [s for s in pool if s.product_id not in dropped]
    loaded = catalog.load([s.product_id for s in pool] + sources)
    rules = exclusions.load_rules()
    src_products = [loaded[s] for s in sources if s in loaded]
    # Every category of each product (an exclusion by category matches any of them), in one
    # query, for the products as shown (a variant as its parent).
    cats = (
        catalog.categories_for({p.pk for p in loaded.values()} | _parent_ids(loaded.values()))
        if rules.by_category
        else {}
    )
    band = _price_band(src_products[0]) if len(src_products) == 1 else None
    chosen: list[Slot] = []
    # Never the product a source is a variant of (nor its siblings, shown as that product).
    shown: set[int] = set(banned)
    for slot in pool:
        product = loaded.get(slot.product_id)
        if product is None:
            continue
        product, slot = _collapse_variant(product, slot)
        if product.pk in shown or not is_sellable(product):
            continue
        if band is not None and not band[0] <= price_of(product) <= band[1]:
            continue
        if rules and any(
            rules.excluded(src.pk, cats.get(src.pk, ()), product.pk, cats.get(product.pk, ()))
            for src in src_products
        ):
            continue
        shown.add(product.pk)
        chosen.append(slot)
        if chosen_products is not None:
            chosen_products[product.pk] = product
        if len(chosen) == limit + SPARE:
            break
    return chosen


def _parent_ids(found: Iterable[Model]) -> set[int]:
    """The primary keys of the loaded products' parents (loaded with them)."""
    catalog = get_catalog()
    return {int(parent.pk) for p in found if (parent := catalog.parent_of(p)) is not None}


def _customers(slot: Slot) -> int:
    """The distinct customers the slot's evidence names (0: none, or not a co-purchase)."""
    value = slot.evidence.get("customers") if isinstance(slot.evidence, dict) else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _price_band(product: Model) -> tuple[Decimal, Decimal] | None:
    band = settings.PRICE_BAND
    if not band:
        return None
    price = price_of(product)
    return price * Decimal(str(band[0])), price * Decimal(str(band[1]))


def _collapse_variant(product: Model, slot: Slot) -> tuple[Model, Slot]:
    """A variant (size, colour) is shown as its parent product."""
    main = get_catalog().parent_of(product)
    if main is None:
        return product, slot
    return main, Slot(main.pk, slot.score, slot.strategy, slot.pinned, slot.evidence)


def category_of(product: Model) -> str | None:
    """The product's category value, for the category fallback."""
    return get_catalog().category_of(product)


__all__ = ["Item", "Slot", "bestseller_ids", "category_of", "products", "ranked_slots", "recommend"]
