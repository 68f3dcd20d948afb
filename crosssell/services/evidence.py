"""The evidence of stored pairs, counted again from today's purchases.

A build stores each pair's evidence (co-purchase count, support, confidence, lift, distinct
customers) as it counted it. When purchases are deleted (a customer's erasure), the pairs among
the products they bought are counted again here, with the build's own definitions
(:func:`crosssell.engine.evidence.pair_evidence`), so the live lists stop counting them at once
instead of at the next rebuild. A few grouped queries over the purchase table, restricted to
those products.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.db import connection
from django.db.models import Q

from crosssell.models import Purchase, Recommendation
from crosssell.services.identity import identity_sql

if TYPE_CHECKING:
    from django.db.models import Field

#: The evidence keys a build writes; a row without any (a manual pin) has nothing to recount.
EVIDENCE_KEYS = ("co_count", "support", "confidence", "lift", "customers")


@dataclass(frozen=True)
class PairCounts:
    """Today's counts for the pairs among a set of products.

    ``orders`` and ``people`` count, per product, the orders holding it and the distinct
    customers (``Purchase.identity``) who bought it; ``co_orders`` and ``co_people`` the same
    for both products of an ordered pair; ``n_orders`` and ``n_people`` the totals.
    """

    n_orders: int
    n_people: int
    orders: dict[int, int]
    people: dict[int, int]
    co_orders: dict[tuple[int, int], int]
    co_people: dict[tuple[int, int], int]

    def evidence(self, source: int, target: int, kind: str) -> dict[str, int | float]:
        """The evidence of one pair as a build would write it today.

        Parameters
        ----------
        source, target
            Product ids, both among the counted products.
        kind
            The list's kind: "customers also bought" counts customers' whole histories (each
            customer one row), the other kinds count orders.

        Returns
        -------
        dict
            ``co_count``, ``support``, ``confidence``, ``lift`` (floats rounded to 6 digits, as a
            build stores them) and ``customers``.
        """
        people = self.co_people.get((source, target), 0)
        if kind == Recommendation.Kind.ALSO_BOUGHT:
            co, n, pop = people, self.n_people, self.people
        else:
            co, n, pop = self.co_orders.get((source, target), 0), self.n_orders, self.orders
        confidence = co / pop[source] if pop.get(source) else 0.0
        lift = confidence * max(n, 1) / pop[target] if pop.get(target) else 0.0
        return {
            "co_count": co,
            "support": round(co / max(n, 1), 6),
            "confidence": round(confidence, 6),
            "lift": round(lift, 6),
            "customers": people,
        }


def count_pairs(product_ids: Iterable[int]) -> PairCounts:
    """Count, from the purchase table, every pair among ``product_ids``.

    Customers are distinct identities (:func:`crosssell.services.identity.identity_sql`), as
    every other count of the privacy threshold.

    Parameters
    ----------
    product_ids
        The products (a customer's history: tens to a few thousand).

    Returns
    -------
    PairCounts
    """
    ids = sorted({int(p) for p in product_ids})
    if not ids:
        return PairCounts(0, 0, {}, {}, {}, {})
    qn = connection.ops.quote_name
    table = qn(Purchase._meta.db_table)
    order, product = qn(_column("order_ref")), qn(_column("product"))
    person = identity_sql("", qn)
    marks = ", ".join(["%s"] * len(ids))
    # Only our own table and column names are formatted in; every value is a parameter.
    with connection.cursor() as cur:
        cur.execute(f"SELECT COUNT(DISTINCT {order}), COUNT(DISTINCT {person}) FROM {table}")
        n_orders, n_people = cur.fetchone()
        cur.execute(
            f"SELECT {product}, COUNT(DISTINCT {order}), COUNT(DISTINCT {person}) FROM {table}"
            f" WHERE {product} IN ({marks}) GROUP BY {product}",
            ids,
        )
        per_product = cur.fetchall()
    return PairCounts(
        int(n_orders or 0),
        int(n_people or 0),
        {int(p): int(o) for p, o, _ in per_product},
        {int(p): int(c) for p, _, c in per_product},
        _co_counts(ids, lambda alias: f"{alias}.{order}"),
        _co_counts(ids, lambda alias: identity_sql(alias, qn)),
    )


def _column(name: str) -> str:
    return str(cast("Field[Any, Any]", Purchase._meta.get_field(name)).column)


def _co_counts(ids: Sequence[int], key: Callable[[str], str]) -> dict[tuple[int, int], int]:
    """``(a, b) -> distinct key(...)`` (orders, or customers) holding both ``a`` and ``b``."""
    qn = connection.ops.quote_name
    table = qn(Purchase._meta.db_table)
    product = qn(_column("product"))
    marks = ", ".join(["%s"] * len(ids))
    a, b = key("a"), key("b")
    sql = f"""
        SELECT a.{product}, b.{product}, COUNT(DISTINCT {a})
        FROM {table} a JOIN {table} b ON {a} = {b}
        WHERE a.{product} IN ({marks}) AND b.{product} IN ({marks}) AND a.{product} <> b.{product}
        GROUP BY a.{product}, b.{product}
    """
    with connection.cursor() as cur:
        cur.execute(sql, [*ids, *ids])
        return {(int(x), int(y)): int(n) for x, y, n in cur.fetchall()}


@dataclass
class Recounted:
    """What :func:`recount_rows` changed."""

    updated: int = 0
    dropped: int = 0


def recount_rows(
    product_ids: Iterable[int], build_ids: Sequence[int], minimum: int, *, curated: bool = True
) -> Recounted:
    """Count the evidence of the stored pairs among ``product_ids`` again, in place.

    A build's row (of ``build_ids``) whose pair is now bought by fewer than ``minimum`` distinct
    customers (and by at least one: a pair nobody else bought rested on the deleted purchases
    alone) is deleted, and the rows after it move up; the others get today's evidence, and a
    co-count strategy's score is its count again. The merchant's own rows (``curated``: pinned
    or rejected, no build) keep their decision with today's evidence; serving applies the
    threshold to them.

    Parameters
    ----------
    product_ids
        The products whose pairs changed.
    build_ids
        The builds to correct (the live one, the experiment variants' own).
    minimum
        ``CROSSSELL_MIN_CUSTOMERS``.
    curated
        Also recount the merchant's rows.

    Returns
    -------
    Recounted
    """
    ids = sorted({int(p) for p in product_ids})
    done = Recounted()
    if not ids:
        return done
    where = Q(build_id__in=list(build_ids))
    if curated:
        where |= Q(build__isnull=True)
    rows = list(
        Recommendation.objects.filter(where, source_id__in=ids, target_id__in=ids).only(
            "pk", "build_id", "kind", "source_id", "target_id", "strategy", "score", "evidence"
        )
    )
    rows = [
        r for r in rows if isinstance(r.evidence, dict) and set(EVIDENCE_KEYS) & set(r.evidence)
    ]
    if not rows:
        return done
    counts = count_pairs(ids)
    floor = max(int(minimum), 1)
    gone: list[int] = []
    changed: list[Recommendation] = []
    moved: set[tuple[Any, str, int]] = set()
    for row in rows:
        fresh = counts.evidence(row.source_id, row.target_id, row.kind)
        if row.build_id is not None and int(fresh["customers"]) < floor:
            gone.append(row.pk)
            moved.add((row.build_id, row.kind, row.source_id))
            continue
        row.evidence = {**row.evidence, **fresh}
        if row.strategy == "cocount":
            row.score = float(fresh["co_count"])
        changed.append(row)
    if gone:
        Recommendation.objects.filter(pk__in=gone).delete()
    if changed:
        Recommendation.objects.bulk_update(changed, ["evidence", "score"], batch_size=1000)
    _close_gaps(moved)
    done.updated, done.dropped = len(changed), len(gone)
    return done


def _close_gaps(lists: Iterable[tuple[Any, str, int]]) -> None:
    """Number the rows of each ``(build, kind, source)`` list 0, 1, 2... again."""
    for build_id, kind, source in sorted(lists):
        renumbered = []
        ordered = (
            Recommendation.objects.filter(build_id=build_id, kind=kind, source_id=source)
            .order_by("rank", "pk")
            .only("pk", "rank")
        )
        for rank, row in enumerate(ordered):
            if row.rank != rank:
                row.rank = rank
                renumbered.append(row)
        if renumbered:
            Recommendation.objects.bulk_update(renumbered, ["rank"])


__all__ = ["EVIDENCE_KEYS", "PairCounts", "Recounted", "count_pairs", "recount_rows"]
