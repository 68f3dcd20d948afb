"""The cart vectors of a build: computed from its co-counts, written in bulk, read per cart.

A build writes one :class:`~crosssell.models.CartVector` per product that has companions
(:func:`write_cart_vectors`, called beside the recommendations' writer for the same products);
serving reads a whole cart's vectors in one query (:func:`read_cart`) and ranks the cart with
:func:`crosssell.engine.cart.score_cart`, as the CART-v1 evaluation does. The parameters a build
used (shrink, lift, length, privacy threshold) are kept in ``Build.parameters["cart"]``, so the
incremental update (:func:`refresh_vectors`) weighs a fresh vector the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from django.db import connections, router, transaction
from django.db.models import (
    BigIntegerField,
    BinaryField,
    CharField,
    Count,
    Field,
    IntegerField,
    JSONField,
    Q,
    Value,
)

from crosssell.conf import settings
from crosssell.engine.cart import (
    CART_STRATEGY,
    DEFAULT_LENGTH,
    DEFAULT_LIFT,
    DEFAULT_SHRINK,
    CartVectors,
    cart_vectors,
    vector_weights,
)
from crosssell.models import Build, CartVector, Purchase, Recommendation
from crosssell.services.extract import Extracted

#: One packed term: the companion's product id, its weight, the customers who bought both.
TERM_DTYPE = np.dtype([("product", "<i8"), ("weight", "<f4"), ("customers", "<i4")])
#: Vectors saved by one ``bulk_create`` (databases other than PostgreSQL).
WRITE_BATCH = 2_000


class CoCounts(Protocol):
    """What the build's evidence counts offer (``EvidenceCounts.orders`` / ``.customers``)."""

    def matrix(self) -> sp.csr_matrix: ...


class Counts(Protocol):
    """The build's exact co-counts (:class:`EvidenceCounts`), counted once per build."""

    @property
    def orders(self) -> CoCounts: ...

    @property
    def customers(self) -> CoCounts: ...


@dataclass(frozen=True)
class CartParameters:
    """How a build computes its cart vectors (``Build.parameters["cart"]``)."""

    shrink: float = DEFAULT_SHRINK
    length: int = DEFAULT_LENGTH
    min_customers: int = 0
    lift: float = DEFAULT_LIFT

    @classmethod
    def of(cls, build: Build) -> CartParameters:
        """The parameters ``build`` recorded (or will use): a tuner may have set ``shrink``,
        ``lift`` or ``length`` there; the threshold is the build's own
        (``CROSSSELL_MIN_CUSTOMERS``)."""
        params: Mapping[str, Any] = build.parameters or {}
        cart = params.get(CART_STRATEGY)
        cart = cart if isinstance(cart, Mapping) else {}
        minimum = params.get("min_customers", settings.MIN_CUSTOMERS)
        return cls(
            float(cart.get("shrink", DEFAULT_SHRINK)),
            int(cart.get("length", DEFAULT_LENGTH)),
            int(cart.get("min_customers", minimum)),
            float(cart.get("lift", DEFAULT_LIFT)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "shrink": self.shrink,
            "lift": self.lift,
            "length": self.length,
            "min_customers": self.min_customers,
        }


def pack(products: npt.ArrayLike, weights: npt.ArrayLike, customers: npt.ArrayLike) -> bytes:
    """One vector's terms as stored (:data:`TERM_DTYPE`), in the given order."""
    ids = np.asarray(products, dtype=np.int64)
    terms = np.empty(len(ids), dtype=TERM_DTYPE)
    terms["product"] = ids
    terms["weight"] = np.asarray(weights, dtype=np.float32)
    terms["customers"] = np.asarray(customers, dtype=np.int32)
    return terms.tobytes()


def unpack(data: bytes | memoryview) -> npt.NDArray[Any]:
    """The terms of a stored vector (a structured array of :data:`TERM_DTYPE`)."""
    return np.frombuffer(bytes(data), dtype=TERM_DTYPE)


def write_cart_vectors(
    build: Build,
    ex: Extracted,
    counts: Counts,
    items: npt.NDArray[np.int64] | None = None,
    *,
    replace: bool = False,
) -> int:
    """Compute and write the cart vectors of ``items`` (default: every product) for ``build``.

    The build's own co-count matrices are read (``counts.orders.matrix()``, and
    ``counts.customers.matrix()`` for the privacy threshold), never counted again. The
    parameters are :meth:`CartParameters.of` the build, recorded in its ``parameters``.

    Parameters
    ----------
    build
        The running build.
    ex
        Its extraction (item index -> product id).
    counts
        Its exact co-counts (``EvidenceCounts``).
    items
        Item indices (ascending) to write, e.g. a chord shard's range.
    replace
        Delete what an earlier attempt wrote for these products first (a redelivered shard).

    Returns
    -------
    int
        Vectors written: none for an experiment variant's build, whose carts are served its
        own strategy's lists fused by rank (the vectors do not depend on the strategy, so every
        arm would show the same carts).
    """
    if build.variant_id is not None:
        return 0
    params = CartParameters.of(build)
    customers = counts.customers.matrix() if params.min_customers > 1 else None
    vectors = cart_vectors(
        counts.orders.matrix(),
        customers,
        items=items,
        shrink=params.shrink,
        length=params.length,
        lift=params.lift,
        min_customers=params.min_customers,
    )
    _record(build, params)
    if replace and len(vectors):
        pids = ex.product_ids[vectors.items]
        CartVector.objects.filter(
            build=build, product_id__gte=int(pids.min()), product_id__lte=int(pids.max())
        ).delete()
    return write_vectors(build, ex.product_ids, vectors)


def _record(build: Build, params: CartParameters) -> None:
    """Keep ``params`` in ``build.parameters["cart"]`` (under a row lock: shards may run at
    once, and other keys of the JSON must survive)."""
    wanted = params.as_dict()
    if (build.parameters or {}).get(CART_STRATEGY) == wanted:
        return
    with transaction.atomic():
        current = (
            Build.objects.select_for_update()
            .filter(pk=build.pk)
            .values_list("parameters", flat=True)
            .first()
        )
        merged = {**(current or {}), CART_STRATEGY: wanted}
        if (current or {}).get(CART_STRATEGY) != wanted:
            Build.objects.filter(pk=build.pk).update(parameters=merged)
    build.parameters = {**(build.parameters or {}), CART_STRATEGY: wanted}


def write_vectors(build: Build, product_ids: npt.NDArray[np.int64], vectors: CartVectors) -> int:
    """Store ``vectors`` (item indices, mapped by ``product_ids``) for ``build``.

    One row per item with at least one term: binary ``COPY`` on PostgreSQL, ``bulk_create``
    elsewhere. Returns how many rows were written.
    """
    rows = list(_rows(product_ids, vectors))
    if not rows:
        return 0
    db = router.db_for_write(CartVector)
    if connections[db].vendor == "postgresql":
        _copy(db, build.pk, rows)
    else:
        for start in range(0, len(rows), WRITE_BATCH):
            CartVector.objects.using(db).bulk_create(
                CartVector(build_id=build.pk, product_id=pid, terms=terms)
                for pid, terms in rows[start : start + WRITE_BATCH]
            )
    return len(rows)


def _rows(product_ids: npt.NDArray[np.int64], v: CartVectors) -> list[tuple[int, bytes]]:
    """``(product id, packed terms)`` per item with terms, packed all at once."""
    sizes = np.diff(v.indptr)
    terms = np.empty(len(v.dst), dtype=TERM_DTYPE)
    terms["product"] = product_ids[v.dst]
    terms["weight"] = v.weight
    terms["customers"] = v.customers
    blob = terms.tobytes()
    width = TERM_DTYPE.itemsize
    starts = (v.indptr[:-1] * width).tolist()
    ends = (v.indptr[1:] * width).tolist()
    pids = product_ids[v.items].tolist()
    return [
        (pid, blob[a:b])
        for pid, a, b, n in zip(pids, starts, ends, sizes.tolist(), strict=True)
        if n
    ]


def _copy(db: str, build_id: int, rows: list[tuple[int, bytes]]) -> None:
    """Binary ``COPY`` of ``(product, terms)`` rows: no text escaping of the packed bytes."""
    meta = CartVector._meta
    qn = connections[db].ops.quote_name
    columns = ", ".join(
        qn(cast("Field[Any, Any]", meta.get_field(f)).column) for f in ("build", "product", "terms")
    )
    sql = f"COPY {qn(meta.db_table)} ({columns}) FROM STDIN (FORMAT BINARY)"
    with connections[db].cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(sql) as copy:
            # The id columns as the schema has them (a shop's product model may have 32-bit
            # ids, as django-oscar's does): binary COPY needs each column's exact type.
            copy.set_types([_pg_type(meta.get_field("build"), db),
                            _pg_type(meta.get_field("product"), db), "bytea"])  # fmt: skip
            for pid, terms in rows:
                copy.write_row((build_id, pid, terms))


_PG_INTEGERS = {"integer": "int4", "bigint": "int8", "smallint": "int2", "serial": "int4",
                "bigserial": "int8", "smallserial": "int2"}  # fmt: skip


def _pg_type(field: Any, db: str) -> str:
    """The PostgreSQL type name psycopg's binary ``COPY`` needs for a foreign key's column."""
    declared = str(field.db_type(connections[db]) or "bigint").split("(")[0].strip().lower()
    return _PG_INTEGERS.get(declared, declared)


@dataclass
class CartRead:
    """What serving reads for a cart in one query: its products' vectors and the merchant's
    decisions on its products' pairs."""

    #: ``product -> terms`` (:func:`unpack`) of the cart's products that have a vector.
    vectors: dict[int, npt.NDArray[Any]] = field(default_factory=dict)
    #: The pinned pairs, the merchant's own first (by their order), then a build's:
    #: ``(target, build id or None, strategy, evidence)``.
    pins: list[tuple[int, int | None, str, dict[str, Any]]] = field(default_factory=list)
    #: The rejected ``(source, target)`` pairs.
    rejected: set[tuple[int, int]] = field(default_factory=set)


def read_cart(sources: Sequence[int], kind: str, build_id: int | None = None) -> CartRead:
    """The vectors of ``sources`` in the live build (or in build ``build_id``), with the pinned
    and rejected pairs of those products (the merchant's, and that build's copies): one
    indexed query (a ``UNION ALL``) whatever the number of sources."""
    ids = [int(s) for s in sources]
    built = Q(build__state=Build.State.LIVE) if build_id is None else Q(build_id=int(build_id))
    none_json = Value(None, output_field=JSONField())
    vectors = (
        CartVector.objects.filter(built, product_id__in=ids)
        .order_by()
        .values_list(
            Value(0, output_field=IntegerField()),
            "product_id",
            Value(0, output_field=BigIntegerField()),
            Value("", output_field=CharField()),
            "build_id",
            Value("", output_field=CharField()),
            Value(0, output_field=IntegerField()),
            "pk",
            none_json,
            "terms",
        )
    )
    Status = Recommendation.Status
    decided = (
        Recommendation.objects.filter(kind=kind, source_id__in=ids)
        .filter(status__in=[Status.PINNED, Status.REJECTED])
        .filter(built | Q(build__isnull=True))
        .order_by()  # no ORDER BY inside a UNION (sqlite refuses it): sorted below
        .values_list(
            Value(1, output_field=IntegerField()),
            "source_id",
            "target_id",
            "status",
            "build_id",
            "strategy",
            "rank",
            "pk",
            "evidence",
            Value(None, output_field=BinaryField()),
        )
    )
    out = CartRead()
    pins = []
    for marker, source, target, status, build, strategy, rank, pk, evidence, terms in vectors.union(
        decided, all=True
    ):
        if marker == 0:
            out.vectors[int(source)] = unpack(terms)
        elif status == Status.REJECTED:
            out.rejected.add((int(source), int(target)))
        else:
            pins.append((build is not None, rank, pk, int(target), build, strategy, evidence))
    pins.sort(key=lambda p: p[:3])  # the merchant's own first, then by rank
    out.pins = [(t, b, str(s), e if isinstance(e, dict) else {}) for *_, t, b, s, e in pins]
    return out


def builds_with_pairs(products: Sequence[int], builds: Sequence[int]) -> list[int]:
    """Of ``builds``, those whose cart vectors hold a pair among ``products`` (the vectors of
    those products are read and unpacked: a few rows per build)."""
    ids = {int(p) for p in products}
    if len(ids) < 2 or not builds:
        return []
    found: set[int] = set()
    rows = CartVector.objects.filter(build_id__in=list(builds), product_id__in=sorted(ids))
    for build_id, terms in rows.values_list("build_id", "terms"):
        if build_id not in found and ids & set(unpack(terms)["product"].tolist()):
            found.add(int(build_id))
    return sorted(found)


def refresh_vectors(
    build: Build,
    product_ids: Sequence[int],
    counts: Mapping[int, list[tuple[int, int, int]]],
) -> int:
    """Write the vectors of ``product_ids`` again from today's co-purchase counts (an order's
    incremental update, in its transaction).

    Parameters
    ----------
    build
        The live build (its ``parameters["cart"]`` weigh the terms).
    product_ids
        The products whose orders changed.
    counts
        ``product -> [(other product, orders with both, distinct customers)]``
        (:func:`crosssell.services.copurchase.co_purchase_counts`).

    Returns
    -------
    int
        Vectors written (a product with no pair at the threshold loses its vector). None for
        a build without vectors (older than them): its carts stay with the rank fusion.
    """
    ids = sorted({int(p) for p in product_ids})
    if not ids or not CartVector.objects.filter(build=build).exists():
        return 0  # a build from before cart vectors: its carts are served by rank fusion
    params = CartParameters.of(build)
    floor = max(params.min_customers, 1)
    pairs_of = {
        pid: [(t, co, cu) for t, co, cu in counts.get(pid, []) if cu >= floor and co > 0]
        for pid in ids
    }
    wanted = set(ids) | {t for pairs in pairs_of.values() for t, _, _ in pairs}
    orders = dict(
        Purchase.objects.filter(product_id__in=sorted(wanted))
        .values("product_id")
        .annotate(n=Count("order_ref", distinct=True))
        .values_list("product_id", "n")
    )
    rows: list[CartVector] = []
    for pid, pairs in pairs_of.items():
        if not pairs:
            continue
        targets = np.asarray([t for t, _, _ in pairs], dtype=np.int64)
        weights = vector_weights(
            [co for _, co, _ in pairs],
            orders.get(pid, 0),
            params.shrink,
            [orders.get(t, 0) for t, _, _ in pairs],
            params.lift,
        )
        # the build's order: the largest weight, then the smaller id; its length
        best = np.lexsort((targets, -weights))[: params.length]
        people = np.asarray([cu for _, _, cu in pairs], dtype=np.int32)
        terms = pack(targets[best], weights[best], people[best])
        rows.append(CartVector(build_id=build.pk, product_id=pid, terms=terms))
    CartVector.objects.filter(build=build, product_id__in=ids).delete()
    CartVector.objects.bulk_create(rows)
    return len(rows)


__all__ = [
    "TERM_DTYPE",
    "CartParameters",
    "CartRead",
    "builds_with_pairs",
    "pack",
    "read_cart",
    "refresh_vectors",
    "unpack",
    "write_cart_vectors",
    "write_vectors",
]
