"""Storefront views: catalog, product page, session cart, checkout."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, F, Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from crosssell.models import Product, user_customer_ref
from crosssell.services import tracking
from crosssell.services.ids import parse_id
from crosssell.services.products import catalog_changed
from crosssell.services.purchases import Line, record_order
from shop.cart import MAX_QUANTITY, Cart
from shop.forms import CartAddForm, CartUpdateForm, CheckoutForm
from shop.models import Order, OrderLine
from shop.throttling import rate_limited

PAGE_SIZE = 24
SORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "popular": ("Most popular", ("-sales", "name", "pk")),
    "new": ("Newest", ("-created_at", "pk")),
    "price": ("Price: low to high", ("price", "pk")),
    "-price": ("Price: high to low", ("-price", "pk")),
    "name": ("Name", ("name", "pk")),
}
SEPARATOR = " > "


@dataclass
class CategoryNode:
    """A top-level category with its sub-categories and product counts."""

    name: str
    count: int = 0
    children: list[tuple[str, str, int]] = field(default_factory=list)  # (path, label, count)


def category_tree() -> list[CategoryNode]:
    """Top-level categories and their children, from the active products (one query)."""
    rows = (
        Product.objects.filter(is_active=True)
        .exclude(category="")
        .values_list("category")
        .annotate(n=Count("id"))
        .order_by("category")
    )
    tree: OrderedDict[str, CategoryNode] = OrderedDict()
    for path, n in rows:
        top, _, rest = path.partition(SEPARATOR)
        node = tree.setdefault(top, CategoryNode(top))
        node.count += n
        if rest:
            node.children.append((path, rest, n))
    return list(tree.values())


def catalog(request: HttpRequest) -> HttpResponse:
    """All active products, filtered by category or a search, paginated."""
    qs = Product.objects.filter(is_active=True)
    # PostgreSQL refuses a NUL character in a query, and no product's text holds one: drop it.
    category = request.GET.get("category", "").replace("\x00", "").strip()
    if category:
        # A top-level category also matches its children ("Photo" -> "Photo > Cameras").
        qs = qs.filter(Q(category=category) | Q(category__startswith=category + SEPARATOR))
    query = request.GET.get("q", "").replace("\x00", "").strip()[:100]
    if query:
        qs = qs.filter(Q(name__icontains=query) | Q(category__icontains=query))
    sort = request.GET.get("sort", "popular")
    if sort not in SORTS:
        sort = "popular"
    if sort == "popular":
        qs = qs.annotate(sales=Count("crosssell_purchases"))
    qs = qs.order_by(*SORTS[sort][1])
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "shop/catalog.html",
        {
            "page": page,
            "categories": category_tree(),
            "category": category,
            "query": query,
            "sort": sort,
            "sorts": [(key, label) for key, (label, _) in SORTS.items()],
            "querystring": params.urlencode(),
            "new_since": timezone.now() - timedelta(days=14),
        },
    )


def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One product with its frequently-bought-together bundle."""
    product = get_object_or_404(Product, pk=pk, is_active=True)
    crumbs = []
    parts = product.category.split(SEPARATOR) if product.category else []
    for i, label in enumerate(parts):
        crumbs.append((SEPARATOR.join(parts[: i + 1]), label))
    return render(
        request,
        "shop/product.html",
        {
            "product": product,
            "crumbs": crumbs,
            "max_quantity": MAX_QUANTITY,
            # ?widgets=0: the same page without recommendations (the serving benchmark's baseline)
            "show_widgets": request.GET.get("widgets") != "0",
        },
    )


def _back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    """Redirect to ``next`` or the referring page when it is on this site, else ``default``."""
    for candidate in (request.POST.get("next"), request.META.get("HTTP_REFERER")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return HttpResponseRedirect(candidate)
    return HttpResponseRedirect(default)


def _quantity_like(value: str | None) -> bool:
    """Whether a posted quantity is a number a form of the shop's could send (blank, or at
    most 9 digits): letters or 20 digits are a malformed request (400), while a number out of
    range is the visitor's mistake, told on the page."""
    text = (value or "").strip()
    return not text or (len(text) <= 10 and text.lstrip("+-").isdigit())


@require_POST
@rate_limited("cart-add")
def cart_add(request: HttpRequest) -> HttpResponse:
    """Add one or more products (``product_id`` repeated) to the cart, then go back."""
    tracking.added_to_cart(request, ())  # a refused form records no add-to-cart
    form = CartAddForm(request.POST)
    if not form.is_valid():
        # A product_id that is not an id (letters, 20 digits) comes from no form of the shop's:
        # a malformed request, 400. A quantity out of range is the visitor's, told on the page.
        raw = request.POST.getlist("product_id")
        if any(parse_id(str(v).strip()) is None for v in raw):
            return HttpResponseBadRequest("product_id: not a product id.")
        if not _quantity_like(request.POST.get("quantity")):
            return HttpResponseBadRequest("quantity: not a number.")
        for error in form.errors.get("quantity", []):
            messages.error(request, f"Quantity: {error}")
        for error in form.non_field_errors():
            messages.error(request, str(error))
        return _back(request, reverse("shop:cart"))
    products = Product.objects.in_bulk(form.product_ids)
    missing = [pid for pid in form.product_ids if pid not in products]
    if missing:
        raise Http404(f"No such product: {missing[0]}")
    cart = Cart(request)
    quantity: int = form.cleaned_data["quantity"]
    added: list[str] = []
    for pid in form.product_ids:
        product = products[pid]
        if not product.is_sellable:
            messages.warning(request, f"Sorry, {product.name} is not available right now.")
            continue
        try:
            cart.add(pid, quantity)
        except ValueError as exc:
            messages.error(request, str(exc))
            break
        added.append(product.name)
        tracking.added_to_cart(request, (pid,))
    if len(added) == 1:
        messages.success(request, f"Added {added[0]} to your cart.")
    elif added:
        messages.success(request, f"Added {len(added)} items to your cart.")
    return _back(request, reverse("shop:cart"))


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    """Change a line's quantity (0 removes it)."""
    form = CartUpdateForm(request.POST)
    if not form.is_valid():
        if parse_id(str(request.POST.get("product_id", "")).strip()) is None:
            return HttpResponseBadRequest("product_id: not a product id.")
        if not _quantity_like(request.POST.get("quantity")):
            return HttpResponseBadRequest("quantity: not a number.")
        messages.error(request, f"Please enter a quantity between 0 and {MAX_QUANTITY}.")
        return redirect("shop:cart")
    cart = Cart(request)
    pid, quantity = form.cleaned_data["product_id"], form.cleaned_data["quantity"]
    if cart.quantity_of(pid):
        cart.set(pid, quantity)
    return redirect("shop:cart")


@require_POST
def cart_remove(request: HttpRequest) -> HttpResponse:
    """Remove a product from the cart."""
    form = CartUpdateForm({"product_id": request.POST.get("product_id"), "quantity": 0})
    if form.is_valid():
        Cart(request).remove(form.cleaned_data["product_id"])
        messages.info(request, "Removed from your cart.")
    return redirect("shop:cart")


def cart_detail(request: HttpRequest) -> HttpResponse:
    """The cart, with what would complete it."""
    return render(request, "shop/cart.html", {"max_quantity": MAX_QUANTITY})


class CheckoutError(Exception):
    """The cart cannot be ordered as it is."""


def place_order(request: HttpRequest, cart: Cart, name: str, email: str) -> Order:
    """Create the order and its lines and record them in crosssell, all in one transaction.

    Stock is checked and decremented under a row lock, so two checkouts cannot sell the
    same last unit.
    """
    with transaction.atomic():
        locked = Product.objects.select_for_update().in_bulk(cart.product_ids)
        lines: list[OrderLine] = []
        for pid in cart.product_ids:
            product = locked.get(pid)
            quantity = cart.quantity_of(pid)
            if product is None or not product.is_sellable:
                raise CheckoutError("Some products in your cart are no longer available.")
            if product.stock is not None and product.stock < quantity:
                raise CheckoutError(f"Only {product.stock} of {product.name} left in stock.")
            lines.append(OrderLine(product=product, quantity=quantity, unit_price=product.price))
        user = request.user if request.user.is_authenticated else None
        order = Order.objects.create(
            number=f"{timezone.now():%y%m%d}-{secrets.token_hex(4).upper()}",
            user=user,
            name=name,
            email=email,
            total=sum((line.unit_price * line.quantity for line in lines), Decimal("0")),
        )
        for line in lines:
            line.order = order
        OrderLine.objects.bulk_create(lines)
        tracked = [line for line in lines if line.product.stock is not None]
        for line in tracked:
            Product.objects.filter(pk=line.product.pk).update(stock=F("stock") - line.quantity)
        if tracked:
            catalog_changed()  # the stock moved in SQL: a sold-out product leaves the widgets
        record_order(
            order.number,
            [Line(line.product.pk, line.quantity, line.unit_price) for line in lines],
            customer_ref=user_customer_ref(request.user),
            # Only a keyed hash is kept: one guest's orders count as one customer.
            email=email,
            purchased_at=order.created_at,
        )
    return order


@rate_limited("checkout")
def checkout(request: HttpRequest) -> HttpResponse:
    """Name and email, then the order (a POST is rate-limited)."""
    cart = Cart(request)
    if not cart:
        messages.info(request, "Your cart is empty.")
        return redirect("shop:catalog")
    initial: dict[str, Any] = {}
    if request.user.is_authenticated:
        initial = {"name": request.user.get_full_name(), "email": request.user.email}
    form = CheckoutForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            order = place_order(
                request, cart, form.cleaned_data["name"], form.cleaned_data["email"]
            )
        except CheckoutError as exc:
            messages.error(request, str(exc))
            return redirect("shop:cart")
        # The lines that came from a widget are credited to its impression (first-party).
        tracking.attribute_order(
            request,
            order.number,
            [(line.product_id, line.quantity, line.unit_price) for line in order.lines.all()],
        )
        cart.clear()
        request.session["last_order"] = order.number
        return redirect("shop:thanks")
    return render(request, "shop/checkout.html", {"form": form})


def thanks(request: HttpRequest) -> HttpResponse:
    """The confirmation of the order this session just placed."""
    number = request.session.get("last_order")
    if not number:
        return redirect("shop:catalog")
    order = get_object_or_404(Order.objects.prefetch_related("lines__product"), number=number)
    return render(request, "shop/thanks.html", {"order": order})
