"""Co-purchase counts straight from the purchase table, for a few products at a time."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from crosssell.models import Purchase


def co_purchase_counts(
    product_ids: Sequence[int], targets: Sequence[int] | None = None
) -> dict[int, list[tuple[int, int, int]]]:
    """For each product: ``(other product, orders with both, distinct customers)``, best first.

    One grouped self-join over the purchase table, using its (product, order) index;
    ``targets`` restricts the other side. A guest counts as one customer per order.
    """
    if not product_ids or (targets is not None and not targets):
        return {}
    table = Purchase._meta.db_table
    params: list[int] = [int(p) for p in product_ids]
    where = f"a.product_id IN ({', '.join(['%s'] * len(params))})"
    if targets is not None:
        where += f" AND b.product_id IN ({', '.join(['%s'] * len(targets))})"
        params += [int(t) for t in targets]
    customer = "CASE WHEN b.customer_ref = '' THEN 'o:' || b.order_ref ELSE b.customer_ref END"
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


def too_few_customers(sources: Sequence[int], targets: Sequence[int], minimum: int) -> set[int]:
    """The targets bought together with any source by 1 to ``minimum - 1`` distinct customers."""
    blocked: set[int] = set()
    for pairs in co_purchase_counts(sources, targets).values():
        blocked.update(t for t, _, customers in pairs if 0 < customers < minimum)
    return blocked
