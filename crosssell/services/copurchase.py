"""Co-purchase counts straight from the purchase table, for a few products at a time."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from crosssell.models import Purchase
from crosssell.services.identity import identity_sql


def co_purchase_counts(
    product_ids: Sequence[int], targets: Sequence[int] | None = None
) -> dict[int, list[tuple[int, int, int]]]:
    """For each product: ``(other product, orders with both, distinct customers)``, best first.

    One grouped self-join over the purchase table, using its (product, order) index;
    ``targets`` restricts the other side. Customers are distinct identities
    (:mod:`crosssell.services.identity`): one guest's orders under one email are one customer.
    """
    if not product_ids or (targets is not None and not targets):
        return {}
    table = Purchase._meta.db_table
    params: list[int] = [int(p) for p in product_ids]
    where = f"a.product_id IN ({', '.join(['%s'] * len(params))})"
    if targets is not None:
        where += f" AND b.product_id IN ({', '.join(['%s'] * len(targets))})"
        params += [int(t) for t in targets]
    customer = identity_sql("b", connection.ops.quote_name)
    # Only our own table and column names are formatted in; every value is a parameter.
    sql = f"""
        SELECT a.product_id, b.product_id, COUNT(DISTINCT b.order_ref),
               COUNT(DISTINCT {customer})
        FROM {table} a JOIN {table} b ON a.order_ref = b.order_ref
        WHERE {where} AND b.product_id <> a.product_id
        GROUP BY a.product_id, b.product_id
    """
    out: dict[int, list[tuple[int, int, int]]] = {}
    with connection.cursor() as cur:
        cur.execute(sql, params)
        for src, dst, co, cu in cur.fetchall():
            out.setdefault(int(src), []).append((int(dst), int(co), int(cu)))
    for lst in out.values():
        lst.sort(key=lambda t: (-t[1], t[0]))
    return out


def unsupported(sources: Sequence[int], targets: Sequence[int], minimum: int) -> set[int]:
    """The targets that no source is now bought together with by ``minimum`` customers.

    The serving check of a published pair (its evidence once reached the threshold, and an
    erasure may have taken it below). Whether a count reaches ``minimum`` is all it reads, so
    an order of a pair still below the threshold changes no answer. Customers are counted as
    the build's evidence counts them (distinct identities who bought both products over their
    whole history, :func:`crosssell.engine.evidence.pair_evidence`), not only those who bought
    both in one order: with the narrower count, a pair a build published for its customers was
    dropped here, a merchant's pin of it included.
    """
    if not sources or not targets:
        return set()
    table = Purchase._meta.db_table
    src = [int(s) for s in sources]
    dst = [int(t) for t in targets]
    a, b = (
        identity_sql("a", connection.ops.quote_name),
        identity_sql("b", connection.ops.quote_name),
    )
    # Only our own table and column names are formatted in; every value is a parameter.
    sql = f"""
        SELECT DISTINCT b.product_id
        FROM {table} a JOIN {table} b ON {a} = {b}
        WHERE a.product_id IN ({", ".join(["%s"] * len(src))})
          AND b.product_id IN ({", ".join(["%s"] * len(dst))})
          AND b.product_id <> a.product_id
        GROUP BY a.product_id, b.product_id
        HAVING COUNT(DISTINCT {b}) >= %s
    """
    with connection.cursor() as cur:
        cur.execute(sql, [*src, *dst, int(minimum)])
        supported = {int(row[0]) for row in cur.fetchall()}
    return set(dst) - supported
