"""Backfilling purchases from the shop's own order tables, in bulk, with their dates.

A shop that installs crosssell already has its history in its own tables (an order-line model
with a foreign key to its order). :func:`backfill_from_queryset` reads those lines through ORM
lookups, one streaming query, and writes :class:`~crosssell.models.Purchase` rows in batches;
an order already recorded (by checkout, a previous backfill or the importer) is skipped whole,
so running it again, or after checkout has started recording, adds nothing twice.

Each order gets its identity by checkout's rule (:mod:`crosssell.services.identity`): a
customer's orders count as the customer, a guest's under one email (``email=``, stored as its
keyed hash only) as one person, and as the customer once an account ordered with that email, so
backfilled guest orders cannot make a pair look bought by more people than it was.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.db.models import Case, CharField, Min, Model, QuerySet, Value, When
from django.utils import timezone
from tqdm import tqdm

from crosssell.models import Purchase
from crosssell.services import cache as cs_cache
from crosssell.services.identity import email_key

#: Order lines read and written per batch (whole orders: a batch never splits one).
BATCH_LINES = 5_000


class BackfillError(ValueError):
    """A lookup does not exist on the order-line model, or a line cannot be recorded."""


@dataclass(frozen=True)
class BackfillReport:
    """What a backfill read and wrote."""

    lines: int = 0
    orders: int = 0
    orders_recorded: int = 0
    orders_skipped: int = 0
    purchases_inserted: int = 0

    def summary(self) -> str:
        return (
            f"{self.lines:,} order lines in {self.orders:,} orders: {self.orders_recorded:,} "
            f"orders recorded ({self.purchases_inserted:,} purchases), {self.orders_skipped:,} "
            "already recorded and skipped."
        )


def backfill_from_queryset(
    qs: QuerySet[Any],
    *,
    order: str,
    product: str = "product_id",
    quantity: str | None = "quantity",
    unit_price: str | None = "unit_price",
    purchased_at: str | None = None,
    customer: str | None = None,
    email: str | None = None,
    batch_lines: int = BATCH_LINES,
    progress: bool = False,
) -> BackfillReport:
    """Record the order lines of ``qs`` as purchases, keeping their dates.

    Parameters
    ----------
    qs
        Order lines of the shop (e.g. ``OrderLine.objects.all()``, or filtered to a period).
    order
        ORM lookup of the order's reference on a line, e.g. ``"order__number"``: recorded as
        ``Purchase.order_ref`` (the value ``record_order`` gets at checkout, so the two agree).
    product
        Lookup of the product's primary key, e.g. ``"product_id"``.
    quantity, unit_price
        Lookups of the line's quantity (``None``: 1) and unit price (``None``: none recorded).
    purchased_at
        Lookup of the order's date, e.g. ``"order__created_at"`` (``None``: now, which a
        backfill rarely wants: recency and the attribution window read this date).
    customer
        Lookup of the customer's id, e.g. ``"order__user_id"`` (``None`` or an empty value: a
        guest). Use the value checkout records (``user_customer_ref``: the user's primary key).
    email
        Lookup of the email the order was placed with, e.g. ``"order__email"`` (``None``: no
        email). Only its keyed hash is stored (``Purchase.email_key``), as at checkout: a
        guest's orders under one email count as one customer for the privacy threshold, and as
        the account's once a customer's order carried that email (orders recorded before
        included). Without it every guest order counts as a person of its own.
    batch_lines
        Lines per batch; each batch is one transaction and one ``bulk_create``.
    progress
        Show a tqdm progress bar (lines) on stderr.

    Returns
    -------
    BackfillReport
        The counts. Lines of one order and product are merged (quantities summed).

    Raises
    ------
    BackfillError
        A lookup is not a field of the line model (nothing written), or a line has no order
        reference, no product, or a quantity below 1.

    Notes
    -----
    An order is skipped when any purchase with its reference exists. No incremental update is
    queued: run a rebuild (``manage.py crosssell_rebuild``) once the history is in.
    """
    lookups = {
        "order": order,
        "product": product,
        "quantity": quantity,
        "unit_price": unit_price,
        "purchased_at": purchased_at,
        "customer": customer,
        "email": email,
    }
    used = {name: lk for name, lk in lookups.items() if lk}
    _validate(qs.model, used)
    names = list(used)
    # Lines come ordered by order reference, so an order is whole within one batch.
    rows = qs.order_by(order, "pk").values_list(*used.values())
    total = rows.count()
    counts = {"lines": 0, "orders": 0, "recorded": 0, "skipped": 0, "inserted": 0}
    with tqdm(
        total=total, desc="backfilling", unit="line", file=sys.stderr, disable=not progress
    ) as bar:
        for batch in _orders_in_batches(rows.iterator(chunk_size=batch_lines), batch_lines):
            lines = sum(len(v) for v in batch.values())
            recorded, inserted = _write(batch, names)
            counts["lines"] += lines
            counts["orders"] += len(batch)
            counts["recorded"] += recorded
            counts["skipped"] += len(batch) - recorded
            counts["inserted"] += inserted
            bar.update(lines)
    if counts["inserted"]:
        cs_cache.bump_on_commit()  # bestsellers and lists read the purchases
    return BackfillReport(
        counts["lines"], counts["orders"], counts["recorded"], counts["skipped"], counts["inserted"]
    )


def _validate(model: type[Model], lookups: dict[str, str]) -> None:
    from django.core.exceptions import FieldDoesNotExist, FieldError

    for name, lookup in lookups.items():
        opts: Any = model._meta
        try:
            for part in lookup.split("__"):
                field = opts.get_field(part)
                if field.is_relation and field.related_model is not None:
                    opts = field.related_model._meta
        except FieldDoesNotExist:
            raise BackfillError(
                f"{name}={lookup!r}: {model._meta.label} has no such field (an ORM lookup from "
                "the order line, e.g. order__number)."
            ) from None
        except FieldError as exc:
            raise BackfillError(f"{name}={lookup!r}: {exc}") from None


def _orders_in_batches(
    rows: Iterator[tuple[Any, ...]], batch_lines: int
) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """Group consecutive lines by order reference into batches of about ``batch_lines``."""
    batch: dict[str, list[tuple[Any, ...]]] = {}
    size = 0
    for row in rows:
        ref = "" if row[0] is None else str(row[0])
        if ref not in batch and size >= batch_lines:
            yield batch
            batch, size = {}, 0
        batch.setdefault(ref, []).append(row)
        size += 1
    if batch:
        yield batch


def _write(batch: dict[str, list[tuple[Any, ...]]], names: list[str]) -> tuple[int, int]:
    """Write the orders of one batch not yet recorded; returns (orders recorded, rows)."""
    if "" in batch:
        raise BackfillError("an order line has no order reference")
    now = timezone.now()
    with transaction.atomic():
        known = set(
            Purchase.objects.filter(order_ref__in=list(batch))
            .values_list("order_ref", flat=True)
            .distinct()
        )
        merged: dict[tuple[str, int], Purchase] = {}
        recorded = 0
        for ref, lines in batch.items():
            if ref in known:
                continue
            recorded += 1
            for row in lines:
                values = dict(zip(names, row, strict=True))
                _add_line(merged, ref, values, now)
        _identify(list(merged.values()))
        created = Purchase.objects.bulk_create(
            list(merged.values()), batch_size=1_000, ignore_conflicts=True
        )
    return recorded, len(created)


def _add_line(
    merged: dict[tuple[str, int], Purchase], ref: str, values: dict[str, Any], now: datetime
) -> None:
    product_id = values["product"]
    if product_id is None:
        raise BackfillError(f"order {ref}: a line has no product")
    pid = product_id.pk if isinstance(product_id, models.Model) else int(product_id)
    quantity = int(values.get("quantity", 1) or 0) if "quantity" in values else 1
    if quantity < 1:
        raise BackfillError(f"order {ref}: product {pid} has quantity {quantity}")
    price = values.get("unit_price")
    at = values.get("purchased_at") or now
    if isinstance(at, date) and not isinstance(at, datetime):
        at = datetime.combine(at, time.min)  # a DateField: the day's start
    if isinstance(at, datetime) and timezone.is_naive(at):
        at = timezone.make_aware(at)
    customer = values.get("customer")
    prev = merged.get((ref, pid))
    if prev is not None:
        prev.quantity += quantity
        return
    address = values.get("email")
    merged[ref, pid] = Purchase(
        order_ref=ref,
        customer_ref="" if customer is None else str(customer),
        email_key=email_key(str(address)) if address else "",
        product_id=pid,
        quantity=quantity,
        unit_price=None if price is None else Decimal(str(price)),
        purchased_at=at,
    )


def _identify(rows: list[Purchase]) -> None:
    """Set each row's identity by checkout's rule (:func:`crosssell.services.identity.resolve`
    and :func:`~crosssell.services.identity.link_guest_orders`), in bulk for the batch.

    A customer's row is ``u:<customer>``; a guest's with an email is the customer's whose
    orders (recorded before, or in this batch) carried that email, the smallest reference when
    several did, else ``e:<email key>``; a row with neither is ``o:<order>``. Guest rows
    recorded earlier under an email that a customer's order of this batch carries become the
    customer's (the smallest reference's).
    """
    keys = {r.email_key for r in rows if r.email_key}
    owners: dict[str, str] = {}
    if keys:
        owners = dict(
            Purchase.objects.filter(email_key__in=keys)
            .exclude(customer_ref="")
            .values("email_key")
            .annotate(owner=Min("customer_ref"))
            .values_list("email_key", "owner")
        )
    newly: dict[str, str] = {}  # keys a customer's order of this batch carries
    for r in rows:
        if r.customer_ref and r.email_key:
            first = min(filter(None, (owners.get(r.email_key), r.customer_ref)))
            owners[r.email_key] = first
            newly[r.email_key] = first
    for r in rows:
        if r.customer_ref:
            r.identity = f"u:{r.customer_ref}"
        elif r.email_key:
            owner = owners.get(r.email_key)
            r.identity = f"u:{owner}" if owner else f"e:{r.email_key}"
        else:
            r.identity = f"o:{r.order_ref}"
    if newly:
        Purchase.objects.filter(identity__in=[f"e:{k}" for k in newly]).update(
            identity=Case(
                *(When(identity=f"e:{k}", then=Value(f"u:{v}")) for k, v in newly.items()),
                output_field=CharField(),
            )
        )
