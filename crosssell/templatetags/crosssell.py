"""``{% load crosssell %}``: the recommendation widgets, as inclusion tags.

Each tag is a thin call to :func:`crosssell.services.serving.recommend` and renders an
overridable template in ``crosssell/``. A widget costs a fixed number of queries whatever its
length (the ranked ids and the fallbacks are cached; the products come in one query), and
renders nothing when there is nothing to show.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import template
from django.db.models import Model
from django.urls import NoReverseMatch, reverse

from crosssell.conf import settings
from crosssell.models import Purchase, Recommendation, user_customer_ref
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
    return _base(context, "cart-recommendations", items)


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
    return _base(context, "also-bought", cards(items))


@register.inclusion_tag("crosssell/recommended_for_you.html", takes_context=True)
def recommended_for_you(context: template.Context, user: Any, limit: Any = None) -> dict[str, Any]:
    """For a signed-in customer, what goes with what they bought; nothing for a visitor."""
    ref = user_customer_ref(user)
    if not ref:
        return {"items": []}
    recent = Purchase.objects.filter(customer_ref=ref).order_by("-purchased_at", "-pk")
    bought = list(dict.fromkeys(recent.values_list("product_id", flat=True)[: 4 * MAX_CART]))
    items = recommend(bought[:MAX_CART], _limit(limit), exclude=bought)
    return _base(context, "recommended-for-you", cards(items))
