"""Oscar's signals, connected by the app's ``ready()``.

- ``order_placed`` (sent by Oscar's ``OrderCreator``): the order's lines become purchases, once.
- ``post_checkout`` (sent by the checkout view, the only one with the request): the lines that
  came from a widget are credited to its impression.
- A changed stock record, category link, category, image or hand-made recommendation starts a
  new cache generation, as a changed product does, so the widgets never show a stale price or
  availability.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from oscar.apps.checkout.signals import post_checkout
from oscar.apps.order.signals import order_placed
from oscar.core.loading import get_model

from crosssell.contrib.oscar import orders, pins
from crosssell.services import tracking
from crosssell.signals import bump_on_change

logger = logging.getLogger(__name__)


def on_order_placed(sender: Any, order: Any, **kwargs: Any) -> None:
    orders.record(order)


def on_post_checkout(sender: Any, order: Any, request: Any = None, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    lines = orders.order_lines(order)
    tracking.attribute_order(
        request,
        str(order.number),
        [(line.product_id, line.quantity, line.unit_price or Decimal(0)) for line in lines],
    )


def on_recommendation_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    primary = instance.primary_id
    transaction.on_commit(lambda: pins.sync([primary]))


def connect() -> None:
    order_placed.connect(on_order_placed, dispatch_uid="crosssell-oscar-order-placed")
    post_checkout.connect(on_post_checkout, dispatch_uid="crosssell-oscar-post-checkout")
    for app, name in [
        ("partner", "StockRecord"),
        ("catalogue", "ProductCategory"),
        ("catalogue", "Category"),
        ("catalogue", "ProductImage"),
    ]:
        model = get_model(app, name)
        for signal in (post_save, post_delete):
            signal.connect(
                bump_on_change, sender=model, dispatch_uid=f"crosssell-oscar-{app}.{name}-{signal}"
            )
    product = get_model("catalogue", "Product")
    m2m_changed.connect(
        bump_on_change,
        sender=product.categories.through,
        dispatch_uid="crosssell-oscar-product-categories",
    )
    link = get_model("catalogue", "ProductRecommendation")
    for signal in (post_save, post_delete):
        signal.connect(
            on_recommendation_changed,
            sender=link,
            dispatch_uid=f"crosssell-oscar-recommendation-{signal}",
        )
