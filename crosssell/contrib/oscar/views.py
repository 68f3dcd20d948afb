"""The bundle form's target: the chosen products go into Oscar's basket (no JavaScript needed)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from crosssell.contrib.oscar.basket import MAX_BUNDLE, add_bundle
from crosssell.services import tracking
from crosssell.services.ids import parse_id

MAX_QUANTITY = 99


@require_POST
def add_to_basket(request: HttpRequest) -> HttpResponse:
    """Add one or more ``product_id`` values (``quantity`` each, default 1) to the basket, then
    go back to ``next`` (or the basket)."""
    raw = request.POST.getlist("product_id")[:MAX_BUNDLE]
    ids = [parse_id(p) for p in raw]
    if not raw or any(i is None for i in ids):
        return HttpResponseBadRequest("product_id: one or more product ids are required.")
    try:
        quantity = int(request.POST.get("quantity") or 1)
    except ValueError:
        return HttpResponseBadRequest("quantity: a whole number is required.")
    if not 1 <= quantity <= MAX_QUANTITY:
        return HttpResponseBadRequest(f"quantity: between 1 and {MAX_QUANTITY}.")
    tracking.added_to_cart(request, ())  # only what goes into the basket counts
    result = add_bundle(request, [i for i in ids if i is not None], quantity)
    # A parent is added as its one available child: the widget showed (and counts) the parent.
    tracking.added_to_cart(request, (p.parent_id or p.pk for p in result.added))
    for product, reason in result.refused:
        messages.warning(request, f"{product.get_title()}: {reason}.")
    if len(result.added) == 1:
        messages.success(request, f"{result.added[0].get_title()} has been added to your basket.")
    elif result.added:
        messages.success(request, f"{len(result.added)} items have been added to your basket.")
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("basket:summary")
    return HttpResponseRedirect(target)
