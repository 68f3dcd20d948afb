"""A customer's data: export it, or erase it from every crosssell table at once.

What an erasure does, table by table (``tests/crosssell/test_erasure.py`` checks each one):

- ``Purchase``: the customer's order lines are deleted (by customer reference, by identity,
  and, given an email, by its keyed hash, so guest orders go too).
- ``Event`` and ``Impression``: the customer's visitors are the visitor ids of the purchase
  events of their orders; every impression and event of those visitors, and every purchase
  event of those orders, is deleted (attributions included).
- ``PendingUpdate``: the update the customer's products wait for is done in the erasure itself
  (:func:`crosssell.services.incremental.update_products`), and their pending rows go.
- ``Recommendation`` of the live build and of the experiment variants' builds: the pairs among
  the customer's products are counted again from the remaining purchases
  (:func:`crosssell.services.evidence.recount_rows`); a pair that no longer has
  ``CROSSSELL_MIN_CUSTOMERS`` customers is deleted. The merchant's pins and rejections keep
  their decision with today's evidence.
- ``CartVector`` of the live build: the update above rewrites the customer's products' cart
  vectors from the remaining purchases (:func:`crosssell.services.cart_store.refresh_vectors`),
  without the pairs now below the threshold (a variant's build stores none).
- ``Build``: a build kept for rollback that holds a pair among the customer's products (in its
  rows or its cart vectors) is deleted with its rows (its evidence counted the customer); the
  live build, the variants' builds and builds without such a pair stay.
- ``Product``, ``Exclusion``, ``Experiment``, ``Variant``, ``CacheGeneration``: no personal
  data (the generation is bumped). A variant is assigned by a hash of the visitor id, so no
  assignment is stored.

Then :data:`crosssell.signals.customer_erased` lets the shop erase its own rows in the same
transaction, and a new cache generation (shared by every process) makes every list forget the
customer at once. Aggregates are recomputed by the next rebuild, not here: a product's sales
(the bestsellers, the confidence and lift of pairs outside the customer's products), the
build's totals and the models' scores (the neural model holds item vectors only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.dispatch import Signal

from crosssell.conf import settings
from crosssell.models import (
    Build,
    Event,
    Impression,
    PendingUpdate,
    Purchase,
    Recommendation,
    Variant,
)
from crosssell.services import cache as cs_cache
from crosssell.services import cart_store, tracking
from crosssell.services.evidence import recount_rows
from crosssell.services.incremental import update_products

logger = logging.getLogger(__name__)

#: Public as ``crosssell.signals.customer_erased`` (documented there); defined here, below the
#: receivers module, so this service imports nothing above the services.
customer_erased = Signal()


@dataclass(frozen=True)
class Customer:
    """Whom to export or erase: a customer reference (the user's primary key), an email (for
    guest orders), or both."""

    ref: str = ""
    email: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ref", (self.ref or "").strip())
        object.__setattr__(self, "email", (self.email or "").strip())
        if not self.ref and not self.email:
            raise ValueError("a customer reference or an email is required")


def as_customer(customer: Customer | str) -> Customer:
    """``customer`` itself, or the customer of a reference."""
    return customer if isinstance(customer, Customer) else Customer(ref=customer)


def purchases_of(customer: Customer | str) -> QuerySet[Purchase]:
    """The customer's order lines: by reference and identity, and by the email's keyed hash.

    Parameters
    ----------
    customer
        A :class:`Customer`, or a customer reference.

    Returns
    -------
    QuerySet
        Every line that counts as this customer's (a guest order linked to the account by its
        email included).
    """
    who = as_customer(customer)
    where = Q(pk__in=[])
    if who.ref:
        where |= Q(customer_ref=who.ref) | Q(identity=f"u:{who.ref}")
    if who.email:
        from crosssell.services.identity import email_key

        key = email_key(who.email)
        where |= Q(email_key=key) | Q(identity=f"e:{key}")
    return Purchase.objects.filter(where)


def visitors_of(order_refs: list[str]) -> list[str]:
    """The visitor ids that placed these orders (from their purchase events)."""
    if not order_refs:
        return []
    return sorted(
        set(
            Event.objects.filter(type=Event.Type.PURCHASE, order_ref__in=order_refs)
            .exclude(visitor="")
            .values_list("visitor", flat=True)
        )
    )


def _events_q(order_refs: list[str], visitors: list[str]) -> Q:
    return Q(order_ref__in=order_refs) | Q(visitor__in=visitors)


def export_customer(customer: Customer | str) -> dict[str, Any]:
    """Everything crosssell holds about one customer: their order lines, and the impressions
    and events (clicks, add-to-carts, purchases) of the visitors who placed their orders.

    Recommendations are not personal data here: they are computed over many customers and a
    pair is only published when at least ``CROSSSELL_MIN_CUSTOMERS`` bought it.

    Parameters
    ----------
    customer
        A :class:`Customer`, or a customer reference.

    Returns
    -------
    dict
        JSON-ready: ``customer``, ``email``, ``purchases``, ``visitors``, ``impressions``,
        ``events``.
    """
    who = as_customer(customer)
    _flush_events()
    lines = list(purchases_of(who).order_by("purchased_at", "pk"))
    orders = sorted({p.order_ref for p in lines})
    visitors = visitors_of(orders)
    impressions = Impression.objects.filter(visitor__in=visitors).order_by("created_at", "pk")
    events = Event.objects.filter(_events_q(orders, visitors)).order_by("created_at", "pk")
    return {
        "customer": who.ref,
        "email": who.email,
        "purchases": [
            {
                "order": p.order_ref,
                "product_id": p.product_id,
                "quantity": p.quantity,
                "unit_price": None if p.unit_price is None else str(p.unit_price),
                "purchased_at": p.purchased_at.isoformat() if p.purchased_at else None,
            }
            for p in lines
        ],
        "visitors": visitors,
        "impressions": [
            {
                "id": str(i.id),
                "at": i.created_at.isoformat(),
                "placement": i.placement,
                "visitor": i.visitor,
                "variant_id": i.variant_id,
                "sources": i.sources,
                "products": i.products,
            }
            for i in impressions
        ],
        "events": [
            {
                "id": str(e.id),
                "type": e.type,
                "at": e.created_at.isoformat(),
                "visitor": e.visitor,
                "impression": None if e.impression_id is None else str(e.impression_id),
                "variant_id": e.variant_id,
                "product_id": e.product_id,
                "order": e.order_ref,
                "quantity": e.quantity,
                "revenue": str(e.revenue),
            }
            for e in events
        ],
    }


@dataclass
class Erased:
    """What an erasure deleted or corrected."""

    purchases: int = 0
    orders: list[str] = field(default_factory=list)
    products: list[int] = field(default_factory=list)
    visitors: list[str] = field(default_factory=list)
    impressions: int = 0
    events: int = 0
    pending: int = 0
    rows_recounted: int = 0
    rows_dropped: int = 0
    builds_dropped: list[int] = field(default_factory=list)


class EventQueueUnavailable(RuntimeError):
    """The event queue (Redis) could not be flushed before an erasure: the customer's visitors'
    queued events would be written after it. Nothing was erased."""


def erase_customer(
    customer: Customer | str, *, wait: float | None = None, force: bool = False
) -> Erased:
    """Erase a customer from every crosssell table, and let the shop erase its own rows.

    See the module's docstring for what happens to each table. Everything is one transaction,
    taken with the rebuild lock held, so no build extracts the purchases while they go (it
    would publish them again); the signal's receivers run inside it, so a receiver that fails
    leaves everything as it was. On commit a new cache generation makes every process serve
    the corrected lists.

    Parameters
    ----------
    customer
        A :class:`Customer`, or a customer reference.
    wait
        Seconds to wait for a running rebuild (default ``CROSSSELL_LOCK_WAIT``).
    force
        Erase even when the event queue cannot be flushed first (Redis down): the events
        still queued there, the customer's visitors' included, are written once Redis is back
        and are not erased (erase again then).

    Returns
    -------
    Erased

    Raises
    ------
    ValueError
        Neither a reference nor an email.
    EventQueueUnavailable
        The event queue could not be flushed (and not ``force``): nothing was erased.
    crosssell.services.locks.LockTimeout
        A rebuild kept the lock for longer than ``wait``.
    """
    from crosssell.services.build import rebuild_lock

    who = as_customer(customer)
    # Events still queued in Redis are written first, to be erased with the rest; when they
    # cannot be, an erasure now would leave them to be written after it.
    _flush_events(refuse=not force)
    with rebuild_lock(wait), transaction.atomic():
        erased = _erase(who)
        cs_cache.bump_on_commit()
    return erased


def _erase(who: Customer) -> Erased:
    purchases = purchases_of(who)
    lines = list(purchases.values_list("order_ref", "product_id"))
    erased = Erased(
        orders=sorted({o for o, _ in lines if o}), products=sorted({int(p) for _, p in lines})
    )
    erased.visitors = visitors_of(erased.orders)
    _, by_model = Event.objects.filter(_events_q(erased.orders, erased.visitors)).delete()
    erased.events = by_model.get(Event._meta.label, 0)
    # An impression's events (another visitor's click on it) go with it.
    _, by_model = Impression.objects.filter(visitor__in=erased.visitors).delete()
    erased.impressions = by_model.get(Impression._meta.label, 0)
    erased.events += by_model.get(Event._meta.label, 0)
    erased.purchases, _ = purchases.delete()

    products = erased.products
    # What the products' pending updates would do, done now (a beat may never come).
    erased.pending, _ = PendingUpdate.objects.filter(product_id__in=products).delete()
    update_products(products)
    served = _served_builds()
    recounted = recount_rows(products, served, settings.MIN_CUSTOMERS)
    erased.rows_recounted, erased.rows_dropped = recounted.updated, recounted.dropped
    erased.builds_dropped = _drop_kept_builds(products, served)

    customer_erased.send(
        sender=Customer,
        customer=who,
        customer_ref=who.ref,
        email=who.email,
        order_refs=list(erased.orders),
    )
    logger.info(
        "crosssell erased a customer: %d line(s), %d event(s), %d impression(s), "
        "%d pair(s) dropped, %d build(s) dropped",
        erased.purchases,
        erased.events,
        erased.impressions,
        erased.rows_dropped,
        len(erased.builds_dropped),
    )
    return erased


def _served_builds() -> list[int]:
    """The builds visitors are served from: the live one and the variants' own."""
    live = list(Build.objects.filter(state=Build.State.LIVE).values_list("pk", flat=True))
    variants = Variant.objects.filter(build__isnull=False).values_list("build_id", flat=True)
    return sorted(set(live) | {int(b) for b in variants if b is not None})


def _drop_kept_builds(products: list[int], served: list[int]) -> list[int]:
    """Delete the builds kept for rollback (ready or failed, not served) and the running ones
    that hold a pair among ``products``: their evidence counted the erased customer. Returns
    their ids. A build still marked running is dead: the erasure holds the rebuild lock, so no
    build runs now (a crashed one left its state behind)."""
    if len(products) < 2:
        return []
    pair = Recommendation.objects.filter(
        build=OuterRef("pk"), source_id__in=products, target_id__in=products
    )
    states = [Build.State.READY, Build.State.FAILED, Build.State.RUNNING]
    kept = Build.objects.filter(state__in=states).exclude(pk__in=served)
    ids = list(kept.filter(Exists(pair)).values_list("pk", flat=True))
    others = list(kept.exclude(pk__in=ids).values_list("pk", flat=True))
    ids += cart_store.builds_with_pairs(products, others)
    if ids:
        Build.objects.filter(pk__in=ids).delete()
    return sorted(ids)


def _flush_events(*, refuse: bool = False) -> None:
    """Write the events queued in Redis now, so that what follows sees them all.

    When Redis is down what it holds cannot be read now: an export goes on with what the
    database has; an erasure (``refuse``) raises :class:`EventQueueUnavailable`, since those
    events would be written after it.
    """
    try:
        tracking.flush()
    except Exception as exc:
        if refuse:
            raise EventQueueUnavailable(
                f"the event queue could not be flushed ({type(exc).__name__}: {exc}); its "
                "events, the customer's visitors' among them, would be written after the "
                "erasure. Nothing erased: retry once Redis answers, or force the erasure."
            ) from exc
        logger.warning("crosssell could not flush the event queue", exc_info=True)


__all__ = [
    "Customer",
    "Erased",
    "EventQueueUnavailable",
    "as_customer",
    "erase_customer",
    "export_customer",
    "purchases_of",
    "visitors_of",
]
