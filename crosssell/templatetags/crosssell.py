"""``{% load crosssell %}``: the recommendation widgets, as inclusion tags.

Each tag is a thin call to :func:`crosssell.services.serving.recommend` and renders an
overridable template in ``crosssell/``. A widget costs a fixed number of queries whatever its
length (the ranked ids and the fallbacks are cached; the products come in one query), and
renders nothing when there is nothing to show.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django import template
from django.db.models import Model
from django.urls import NoReverseMatch, reverse

from crosssell.conf import settings
from crosssell.models import Purchase, Recommendation, user_customer_ref
from crosssell.services import tracking
from crosssell.services.products import is_sellable, price_of, read
from crosssell.services.serving import MAX_CART, Item, category_of, recommend

logger = logging.getLogger(__name__)
register = template.Library()


@dataclass(frozen=True)
class Card:
    """What a widget shows of one product."""

    product: Model
    id: int
    name: str
    price: Decimal
    url: str
    image: str
    hue: int  # a stable colour for the image placeholder, from the category
    strategy: str = ""
    pinned: bool = False
    token: str = ""  # the signed impression token a tracked link or form carries

    @property
    def tracked_url(self) -> str:
        """The product's URL, carrying the widget's impression when tracking is on."""
        if not self.token or not self.url:
            return self.url
        return f"{self.url}{'&' if '?' in self.url else '?'}cs={self.token}"

    @property
    def price_cents(self) -> int:
        return int((self.price * 100).to_integral_value())

    @property
    def initial(self) -> str:
        return self.name[:1].upper()


def card(product: Model, strategy: str = "", pinned: bool = False) -> Card:
    """A loaded product as a :class:`Card` (no query: everything is on the row)."""
    url_of = getattr(product, "get_absolute_url", None)
    category = category_of(product) or ""
    return Card(
        product=product,
        id=int(product.pk),
        name=str(read(product, "name", str(product))),
        price=price_of(product),
        url=url_of() if callable(url_of) else "",
        image=str(read(product, "image", "") or ""),
        hue=zlib.crc32(category.split(" > ")[0].encode()) % 360,
        strategy=strategy,
        pinned=pinned,
    )


def cards(items: list[Item]) -> list[Card]:
    return [card(i.product, i.slot.strategy, i.slot.pinned) for i in items]


def track(
    context: template.Context, placement: str, sources: list[int], items: list[Card]
) -> list[Card]:
    """Record the impression of a rendered list and give each item its signed token; a
    visitor in a holdout variant of the placement's experiment sees no widget at all."""
    request = context.get("request")
    session = getattr(request, "session", None)
    if not settings.TRACKING or session is None:
        return items
    visitor = tracking.visitor_id(session)
    running = tracking.active_experiment(placement)
    variant = tracking.assign(running[0], running[1], visitor) if running else None
    if variant is not None and variant.holdout:
        tracking.record_impression(placement, visitor, sources, [], [], variant)
        return []
    if not items:
        return items
    rendered = tracking.record_impression(
        placement, visitor, sources, [c.id for c in items], [c.strategy for c in items], variant
    )
    return [replace(c, token=tracking.item_token(rendered, c.id)) for c in items]


def add_to_cart_url() -> str:
    """``CROSSSELL_ADD_TO_CART_URL`` as a path: a URL name is reversed; "" means no form."""
    value = str(settings.ADD_TO_CART_URL or "")
    if not value or value.startswith("/") or "://" in value:
        return value
    try:
        return reverse(value)
    except NoReverseMatch:
        logger.warning("CROSSSELL_ADD_TO_CART_URL %r does not resolve; no cart form", value)
        return ""


def _limit(limit: Any) -> int:
    try:
        n = int(limit) if limit is not None else int(settings.DEFAULT_LIMIT)
    except (TypeError, ValueError):
        n = int(settings.DEFAULT_LIMIT)
    return max(1, min(n, int(settings.MAX_LIMIT)))


def _base(context: template.Context, widget: str, items: list[Card]) -> dict[str, Any]:
    request = context.get("request")
    return {
        "widget": widget,
        "items": items,
        "add_url": add_to_cart_url(),
        "next": request.get_full_path() if request is not None else "",
        "request": request,
    }


@register.inclusion_tag("crosssell/frequently_bought_together.html", takes_context=True)
def frequently_bought_together(
    context: template.Context, product: Model | None, limit: Any = None
) -> dict[str, Any]:
    """The product and what is bought with it, with checkboxes, the bundle's price and one
    "add selected to cart" button."""
    if product is None:
        return {"items": []}
    items = cards(recommend([product.pk], _limit(limit), category=category_of(product)))
    items = track(context, "product", [int(product.pk)], items)
    main = card(product, "this item")
    sellable = is_sellable(product)
    bundle = ([main] if sellable else []) + items
    return {
        **_base(context, "frequently-bought-together", items),
        "product": main,
        "product_sellable": sellable,
        "bundle_total": sum((c.price for c in bundle), Decimal("0")),
        "bundle_count": len(bundle),
    }


@register.inclusion_tag("crosssell/cart_recommendations.html", takes_context=True)
def cart_recommendations(
    context: template.Context, cart_product_ids: Any, limit: Any = None
) -> dict[str, Any]:
    """What completes this cart; never a product already in it."""
    ids = [int(i) for i in (cart_product_ids or [])]
    items = cards(recommend(ids, _limit(limit))) if ids else []
    return _base(context, "cart-recommendations", track(context, "cart", ids, items))


@register.inclusion_tag("crosssell/also_bought.html", takes_context=True)
def also_bought(
    context: template.Context, product: Model | None, limit: Any = None
) -> dict[str, Any]:
    """Customers who bought this also bought."""
    if product is None:
        return {"items": []}
    items = recommend(
        [product.pk],
        _limit(limit),
        kind=Recommendation.Kind.ALSO_BOUGHT,
        category=category_of(product),
    )
    tracked = track(context, "also_bought", [int(product.pk)], cards(items))
    return _base(context, "also-bought", tracked)


@register.inclusion_tag("crosssell/recommended_for_you.html", takes_context=True)
def recommended_for_you(context: template.Context, user: Any, limit: Any = None) -> dict[str, Any]:
    """For a signed-in customer, what goes with what they bought; nothing for a visitor."""
    ref = user_customer_ref(user)
    if not ref:
        return {"items": []}
    recent = Purchase.objects.filter(customer_ref=ref).order_by("-purchased_at", "-pk")
    bought = list(dict.fromkeys(recent.values_list("product_id", flat=True)[: 4 * MAX_CART]))
    items = recommend(bought[:MAX_CART], _limit(limit), exclude=bought)
    tracked = track(context, "for_you", bought[:MAX_CART], cards(items))
    return _base(context, "recommended-for-you", tracked)
