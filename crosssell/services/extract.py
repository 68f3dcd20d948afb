"""One streaming pass over the ORM into the engine's integer-indexed matrices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemContent
from crosssell.models import Purchase, product_field
from crosssell.services.products import products

ProgressFn = Callable[[str, float, int], None]
CHUNK = 50_000


@dataclass(frozen=True)
class Extracted:
    """Interactions plus the map from item index to product primary key."""

    data: Interactions
    product_ids: npt.NDArray[np.int64]
    n_lines: int

    def index_of(self) -> dict[int, int]:
        """Product primary key -> item index."""
        return {int(pk): i for i, pk in enumerate(self.product_ids)}


def extract(with_content: bool = True, progress: ProgressFn | None = None) -> Extracted:
    """Read every product and purchase into an :class:`Interactions`.

    Parameters
    ----------
    with_content
        Also read names, texts, categories and prices (for content strategies).
    progress
        Called as ``progress(stage, fraction, rows)`` while reading.

    Returns
    -------
    Extracted
        Items are all products, ordered by primary key, so a product with no sales still has an
        index (content strategies and fallbacks serve it).
    """
    product_ids, content = _read_products(with_content)
    index = {int(pk): i for i, pk in enumerate(product_ids)}
    total = Purchase.objects.count()
    orders: dict[str, int] = {}
    customers: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    order_customer: list[int] = []
    n = 0
    qs = Purchase.objects.order_by().values_list("order_ref", "customer_ref", "product_id")
    for order_ref, customer_ref, product_id in qs.iterator(chunk_size=CHUNK):
        o = orders.get(order_ref)
        if o is None:
            o = orders[order_ref] = len(orders)
            # A guest's order is a customer of its own; "o:" keeps it apart from real refs.
            key = customer_ref or f"o:{order_ref}"
            c = customers.get(key)
            if c is None:
                c = customers[key] = len(customers)
            order_customer.append(c)
        rows.append(o)
        cols.append(index[product_id])
        n += 1
        if progress and n % CHUNK == 0:
            progress("extract", n / max(total, 1), n)
    X = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (np.asarray(rows), np.asarray(cols))),
        shape=(len(orders), len(product_ids)),
    )
    X.sum_duplicates()
    X.data[:] = 1.0
    data = Interactions(X, np.asarray(order_customer, dtype=np.int64), len(customers), content)
    if progress:
        progress("extract", 1.0, n)
    return Extracted(data, product_ids, n)


def _read_products(with_content: bool) -> tuple[npt.NDArray[np.int64], ItemContent | None]:
    roles = ["name", "text", "category", "price"]
    lookups = [product_field(r) for r in roles]
    present = [lk for lk in lookups if lk]
    qs = products().order_by("pk")
    if not with_content:
        ids = np.fromiter(qs.values_list("pk", flat=True), dtype=np.int64)
        return ids, None
    pks: list[int] = []
    cols: dict[str, list[object]] = {lk: [] for lk in present}
    for row in qs.values_list("pk", *present).iterator(chunk_size=CHUNK):
        pks.append(row[0])
        for lk, value in zip(present, row[1:], strict=True):
            cols[lk].append(value)

    def text(lookup: str | None) -> list[str]:
        return ["" if v is None else str(v) for v in cols[lookup]] if lookup else [""] * len(pks)

    price_lookup = lookups[3]
    prices = (
        np.array([np.nan if v is None else float(v) for v in cols[price_lookup]])  # type: ignore[arg-type]
        if price_lookup
        else np.full(len(pks), np.nan)
    )
    content = ItemContent(text(lookups[0]), text(lookups[1]), text(lookups[2]), prices)
    return np.asarray(pks, dtype=np.int64), content
