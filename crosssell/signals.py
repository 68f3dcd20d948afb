"""Receivers: a merchant's exclusion, an experiment or a variant (which one a visitor sees is
cached with the lists), and any saved or deleted product, take effect at once (a new cache
generation), whatever makes the change: the admin, a command, the shell.

The widgets' HTML and the API's lists are cached per generation, so a product that stops being
sellable, or changes its name or price, must start a new one. Writes that bypass the signals
(``QuerySet.update``, ``bulk_create``: an import, a stock decrement in SQL) call
:func:`crosssell.services.products.catalog_changed` themselves.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.db.models.signals import post_delete, post_save

from crosssell.models import Exclusion, Experiment, Variant, get_product_model
from crosssell.services import cache as cs_cache

#: Sent by :func:`crosssell.services.customers.erase_customer` (``crosssell_customer erase``)
#: once crosssell's own rows of a customer are gone, inside the erasure's transaction, so the
#: shop erases its rows of the same person (orders, names, emails) all or nothing with it: a
#: receiver that raises rolls the whole erasure back. Keyword arguments: ``customer`` (a
#: :class:`crosssell.services.customers.Customer`), ``customer_ref`` (the customer reference,
#: the user's primary key; may be empty), ``email`` (as given; may be empty) and
#: ``order_refs`` (the erased order numbers, guest orders found by the email included). The
#: sender is the ``Customer`` class. Defined in that service (a service imports nothing above
#: the services); this is its public name.
from crosssell.services.customers import customer_erased as customer_erased


def bump_on_change(sender: Any, **kwargs: Any) -> None:
    """A model signal's receiver for :func:`crosssell.services.cache.bump_on_commit`."""
    cs_cache.bump_on_commit()


def connect() -> None:
    """Called from the app's ``ready()``, once the product model can be resolved."""
    senders: list[type[Model]] = [Exclusion, Experiment, Variant, get_product_model()]
    for model in senders:
        for signal in (post_save, post_delete):
            signal.connect(
                bump_on_change, sender=model, dispatch_uid=f"crosssell-{model._meta.label}-{signal}"
            )
