"""``{% load crosssell %}``: the recommendation widgets.

Each tag is a thin call to :func:`crosssell.services.serving.recommend` (or
:mod:`crosssell.services.for_you`) and renders an overridable template in ``crosssell/``. The
variant, its build and the cache are :func:`crosssell.services.widgets.serve`'s, as for the
API: the rendered HTML is cached per cache generation (a new build, a pin, a changed product
start a new one) and per variant's build, with marks where the
per-request parts go (the impression's signed token, the CSRF token, the ``next`` URL): a hot
widget costs no query and no template rendering, only the marks' replacement and one queued
impression. On a miss a widget costs a fixed number of queries whatever its length. A widget
renders nothing when there is nothing to show.
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import template
from django.db.models import Model
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.crypto import salted_hmac
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from crosssell.conf import settings
from crosssell.models import Recommendation, user_customer_ref
from crosssell.services import for_you, tracking, widgets
from crosssell.services.catalog import MONEY_SAMPLE, format_money, get_catalog
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
        return f"{self.url}{'&' if '?' in self.url else '?'}cs={self.token}&csp={self.id}"

    @property
    def price_cents(self) -> int:
        return int((self.price * 100).to_integral_value())

    @property
    def initial(self) -> str:
        return self.name[:1].upper()


def card(product: Model, strategy: str = "", pinned: bool = False, token: str = "") -> Card:
    """A loaded product as a :class:`Card` (no query: everything is on the row)."""
    catalog = get_catalog()
    category = category_of(product) or ""
    return Card(
        product=product,
        id=int(product.pk),
        name=catalog.name_of(product),
        price=catalog.price_of(product),
        url=catalog.url_of(product),
        image=catalog.image_of(product),
        hue=zlib.crc32(category.split(" > ")[0].encode()) % 360,
        strategy=strategy,
        pinned=pinned,
        token=token,
    )


def cards(items: list[Item], token: str = "") -> list[Card]:
    return [card(i.product, i.slot.strategy, i.slot.pinned, token) for i in items]


@dataclass(frozen=True)
class Fragment:
    """A rendered widget with its marks, and what its impression records."""

    html: str
    ids: tuple[int, ...]
    strategies: tuple[str, ...]


@dataclass(frozen=True)
class Marks:
    """Stand-ins for the per-request parts of a cached widget: hexadecimal strings derived from
    ``SECRET_KEY``, so that no product text can contain one, and left alone by HTML escaping."""

    token: str
    csrf: str
    next: str


@functools.cache
def marks() -> Marks:
    base = salted_hmac("crosssell.marks", "widget", algorithm="sha1").hexdigest()[:20]
    return Marks(f"cs{base}t", f"cs{base}c", f"cs{base}n")


#: ``build(build_id, token)`` -> the template's context and the list's cards.
Builder = Callable[[int | None, str], tuple[dict[str, Any], list[Card]]]


def render_widget(
    context: template.Context,
    placement: str,
    template_name: str,
    sources: list[int],
    key: str,
    build: Builder,
) -> SafeString:
    """Render (or reuse) one widget and record its impression.

    The variant, its build and the cache are :func:`crosssell.services.widgets.serve`'s: a
    visitor in a holdout variant sees no widget at all (the impression is recorded, empty).
    """
    request = context.get("request")
    if request is None:  # rendered outside a request (an e-mail): nothing to cache or track
        ctx, items = build(None, "")
        ctx["next"] = ""
        return _render(template_name, ctx, items)
    mark = marks()

    def compute(assignment: widgets.Assignment) -> Fragment:
        ctx, items = build(assignment.build_id, mark.token if assignment.tracked else "")
        if not items:
            return Fragment("", (), ())
        ctx.update(csrf_token=mark.csrf, next=mark.next if ctx.get("next") else "")
        html = render_to_string(template_name, ctx)
        return Fragment(html, tuple(c.id for c in items), tuple(c.strategy for c in items))

    holder = request if hasattr(request, "session") else None
    served = widgets.serve(placement, holder, f"html:{template_name}:{key}", compute)
    fragment = served.value
    if served.holdout:
        tracking.record_impression(
            placement, tracking.visitor_id(request), sources, [], [], served.variant
        )
        return SafeString("")
    if not fragment.ids:
        return SafeString("")
    html = fragment.html
    if served.assignment.tracked:
        shown = tracking.record_impression(
            placement,
            tracking.visitor_id(request),
            sources,
            fragment.ids,
            fragment.strategies,
            served.variant,
        )
        html = html.replace(mark.token, shown.token)
    if mark.csrf in html:
        # The page's own token when it has one (masking a new one costs more than the rest).
        csrf = str(context.get("csrf_token") or "")
        if not csrf or csrf == "NOTPROVIDED":
            csrf = get_token(request)
        html = html.replace(mark.csrf, csrf)
    if mark.next in html:
        html = html.replace(mark.next, escape(request.get_full_path()))
    return mark_safe(html)


def _render(template_name: str, ctx: dict[str, Any], items: list[Card]) -> SafeString:
    return mark_safe(render_to_string(template_name, ctx)) if items else SafeString("")


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


def _base(widget: str, items: list[Card]) -> dict[str, Any]:
    return {"widget": widget, "items": items, "add_url": add_to_cart_url(), "next": True}


@register.filter
def crosssell_money(amount: Any) -> str:
    """``{{ amount|crosssell_money }}``: money as the shop writes it (``CROSSSELL_FORMAT_MONEY``);
    "" for a value that is not a number."""
    try:
        return format_money(amount)
    except (ArithmeticError, TypeError, ValueError):
        return ""


@register.simple_tag(takes_context=True)
def frequently_bought_together(
    context: template.Context, product: Model | None, limit: Any = None
) -> SafeString:
    """The product and what is bought with it, with checkboxes, the bundle's price and one
    "add selected to cart" button."""
    if product is None:
        return SafeString("")
    n = _limit(limit)

    def build(build_id: int | None, token: str) -> tuple[dict[str, Any], list[Card]]:
        found = recommend([product.pk], n, category=category_of(product), build_id=build_id)
        items = cards(found, token)
        main = card(product, "this item")
        sellable = get_catalog().is_sellable(product)
        bundle = ([main] if sellable else []) + items
        total = sum((c.price for c in bundle), Decimal("0"))
        return {
            **_base("frequently-bought-together", items),
            "product": main,
            "product_sellable": sellable,
            "bundle_total": total,
            "bundle_count": len(bundle),
            # How the shop writes money, for the script that re-totals the ticked items: the
            # sample is built from the total, so a price type that carries its currency (Oscar's
            # stock records') writes the sample in the bundle's currency.
            "money_sample": format_money(total + (MONEY_SAMPLE - total)),
            "impression_token": token,
        }, items

    return render_widget(
        context,
        "product",
        "crosssell/frequently_bought_together.html",
        [int(product.pk)],
        f"fbt:{product.pk}:{n}",
        build,
    )


@register.simple_tag(takes_context=True)
def cart_recommendations(
    context: template.Context, cart_product_ids: Any, limit: Any = None
) -> SafeString:
    """What completes this cart; never a product already in it."""
    ids = sorted({int(i) for i in (cart_product_ids or [])})[:MAX_CART]
    if not ids:
        return SafeString("")
    n = _limit(limit)

    def build(build_id: int | None, token: str) -> tuple[dict[str, Any], list[Card]]:
        items = cards(recommend(ids, n, build_id=build_id), token)
        return _base("cart-recommendations", items), items

    return render_widget(
        context,
        "cart",
        "crosssell/cart_recommendations.html",
        ids,
        f"cart:{','.join(map(str, ids))}:{n}",
        build,
    )


@register.simple_tag(takes_context=True)
def also_bought(context: template.Context, product: Model | None, limit: Any = None) -> SafeString:
    """Customers who bought this also bought."""
    if product is None:
        return SafeString("")
    n = _limit(limit)

    def build(build_id: int | None, token: str) -> tuple[dict[str, Any], list[Card]]:
        found = recommend(
            [product.pk],
            n,
            kind=Recommendation.Kind.ALSO_BOUGHT,
            category=category_of(product),
            build_id=build_id,
        )
        items = cards(found, token)
        return _base("also-bought", items), items

    return render_widget(
        context,
        "also_bought",
        "crosssell/also_bought.html",
        [int(product.pk)],
        f"also:{product.pk}:{n}",
        build,
    )


@register.simple_tag(takes_context=True)
def recommended_for_you(context: template.Context, user: Any, limit: Any = None) -> SafeString:
    """For a signed-in customer, what goes with what they bought; nothing for a visitor."""
    ref = user_customer_ref(user)
    if not ref:
        return SafeString("")
    history = for_you.history(ref)
    if not history.bought:
        return SafeString("")
    n = _limit(limit)

    def build(build_id: int | None, token: str) -> tuple[dict[str, Any], list[Card]]:
        items = cards(for_you.recommend_for(history, n, build_id), token)
        return _base("recommended-for-you", items), items

    return render_widget(
        context,
        "for_you",
        "crosssell/recommended_for_you.html",
        history.sources,
        f"you:{history.key}:{n}",
        build,
    )
