"""Who a purchase counts as: one identity per person, however they order.

The privacy threshold (``CROSSSELL_MIN_CUSTOMERS``) counts distinct identities, never orders:

- a signed-in (or imported) customer is ``"u:" + customer_ref``, the shop's user reference;
- a guest who gave an email is ``"e:" + email_key(email)``, a keyed hash of the normalised
  email; once a signed-in customer's order carried that email, the guest's orders count as
  that customer (``"u:" + customer_ref``), earlier ones included;
- an order with neither is an identity of its own, ``"o:" + order_ref``.

A row written without an identity (by a shop's own bulk insert) counts by the last two rules'
fallback on ``customer_ref`` and ``order_ref``: :func:`identity_sql` and
:func:`effective_identity` are that one rule, in SQL and in Python.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings as django_settings
from django.db import connections, router
from django.db.models import Case, CharField, F, Q, Value, When
from django.db.models.functions import Concat
from django.utils.crypto import salted_hmac

from crosssell.conf import settings
from crosssell.models import Purchase

#: The salt of the email hash: a change of it (or of the secret) starts new identities.
SALT = "crosssell.identity.email"


def normalise_email(email: str) -> str:
    """The email as identities compare it: surrounding spaces stripped, lower case.

    Nothing else is folded (no ``+tag`` or dot removal): two mailboxes are two identities.
    """
    return email.strip().lower()


def email_key(email: str) -> str:
    """HMAC-SHA256 (hex) of the normalised ``email``; empty for an empty email.

    The key is ``CROSSSELL_IDENTITY_SECRET``, or, when that is unset, ``SECRET_KEY`` (through
    Django's ``salted_hmac`` with :data:`SALT`), so the database never holds an address and
    the hash cannot be recomputed without the secret.
    """
    normalised = normalise_email(email)
    if not normalised:
        return ""
    secret = settings.IDENTITY_SECRET or django_settings.SECRET_KEY
    return salted_hmac(SALT, normalised, secret=secret, algorithm="sha256").hexdigest()


def effective_identity(identity: str, customer_ref: str, order_ref: str) -> str:
    """A row's identity: the stored one, else its customer, else its own order."""
    if identity:
        return identity
    return f"u:{customer_ref}" if customer_ref else f"o:{order_ref}"


def identity_sql(alias: str = "", quote: Callable[[str], str] | None = None) -> str:
    """The SQL expression of :func:`effective_identity` over the purchase table's columns.

    ``alias`` qualifies the columns (``"b"`` gives ``b."identity"``). Only our own column names
    are formatted in.
    """
    qn = quote or connections[router.db_for_read(Purchase)].ops.quote_name
    prefix = f"{alias}." if alias else ""

    fields = Purchase._meta
    ident = prefix + qn(fields.get_field("identity").column)
    customer = prefix + qn(fields.get_field("customer_ref").column)
    order = prefix + qn(fields.get_field("order_ref").column)
    return (
        f"CASE WHEN {ident} <> '' THEN {ident}"
        f" WHEN {customer} <> '' THEN 'u:' || {customer} ELSE 'o:' || {order} END"
    )


def identity_expression() -> Case:
    """:func:`effective_identity` as an ORM expression over ``Purchase`` (for ``Count``)."""
    return Case(
        When(~Q(identity=""), then=F("identity")),
        When(~Q(customer_ref=""), then=Concat(Value("u:"), F("customer_ref"))),
        default=Concat(Value("o:"), F("order_ref")),
        output_field=CharField(),
    )


def resolve(order_ref: str, customer_ref: str = "", email: str = "") -> tuple[str, str]:
    """``(identity, email_key)`` of a new order, linking a guest's email to its account.

    A signed-in order with an email turns the guest orders recorded under that email into the
    customer's (their products are returned to the caller's update through
    :func:`link_guest_orders`); a guest order under an email a signed-in order already carried
    counts as that customer (the smallest reference when several accounts share the email).
    Call inside the order's transaction: on PostgreSQL a transaction lock per email serialises
    two orders with one email, so neither misses the other's link.
    """
    key = email_key(email)
    if customer_ref:
        return f"u:{customer_ref}", key
    if not key:
        return f"o:{order_ref}", ""
    _lock(key)
    owner = (
        Purchase.objects.filter(email_key=key)
        .exclude(customer_ref="")
        .order_by("customer_ref")
        .values_list("customer_ref", flat=True)
        .first()
    )
    return (f"u:{owner}" if owner else f"e:{key}"), key


def link_guest_orders(customer_ref: str, key: str) -> list[int]:
    """Count earlier guest orders under ``key`` as ``customer_ref``; their product ids."""
    if not customer_ref or not key:
        return []
    _lock(key)
    qs = Purchase.objects.filter(identity=f"e:{key}")
    product_ids = sorted(set(qs.values_list("product_id", flat=True)))
    if product_ids:
        qs.update(identity=f"u:{customer_ref}")
    return product_ids


def _lock(key: str) -> None:
    """A transaction-scoped lock on one email key (PostgreSQL; SQLite serialises writers)."""
    conn = connections[router.db_for_write(Purchase)]
    if conn.vendor == "postgresql":
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", [key])


__all__ = [
    "SALT",
    "effective_identity",
    "email_key",
    "identity_expression",
    "identity_sql",
    "link_guest_orders",
    "normalise_email",
    "resolve",
]
