"""One streaming pass over the purchases into the engine's integer-indexed matrices."""

from __future__ import annotations

import selectors
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from django.db import connections, router

from crosssell.engine.base import Interactions, ItemContent
from crosssell.models import Purchase
from crosssell.services.catalog import get_catalog
from crosssell.services.identity import effective_identity, identity_sql

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
        index (content strategies and fallbacks serve it). Orders are numbered as they are read,
        customers as their first order is read. A customer is an identity
        (:mod:`crosssell.services.identity`): a signed-in customer, a guest's email, or else
        the order itself.

    Notes
    -----
    On PostgreSQL the purchases come in one binary ``COPY`` in which the server has already
    turned the order reference and the identity into 128-bit hashes (two seeds of
    ``hashtextextended``), parsed in bulk with numpy; elsewhere the ORM streams them. Two
    references are taken for one only if both 64-bit hashes collide (about ``n**2 / 2**129``
    for ``n`` references); a collision of the first hash alone is detected and resolved with
    the second.
    """
    product_ids, content = _read_products(with_content)
    db = router.db_for_read(Purchase)
    if connections[db].vendor == "postgresql":
        lines = _purchases_postgresql(db, product_ids, progress)
    else:
        lines = _purchases_orm(product_ids, progress)
    X = sp.csr_matrix(
        (np.ones(len(lines.order), dtype=np.float32), (lines.order, lines.item)),
        shape=(lines.n_orders, len(product_ids)),
    )
    X.sum_duplicates()
    X.data[:] = 1.0
    data = Interactions(X, lines.order_customer, lines.n_customers, content)
    if progress:
        progress("extract", 1.0, len(lines.order))
    return Extracted(data, product_ids, len(lines.order))


@dataclass(frozen=True)
class _Lines:
    """The purchases as integer codes: one entry per line, and the customer of each order."""

    order: npt.NDArray[np.int64]
    item: npt.NDArray[np.int64]
    n_orders: int
    order_customer: npt.NDArray[np.int64]
    n_customers: int


def _purchases_orm(product_ids: npt.NDArray[np.int64], progress: ProgressFn | None) -> _Lines:
    index = {int(pk): i for i, pk in enumerate(product_ids)}
    total = Purchase.objects.count()
    orders: dict[str, int] = {}
    customers: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    order_customer: list[int] = []
    qs = Purchase.objects.order_by().values_list(
        "order_ref", "identity", "customer_ref", "product_id"
    )
    for n, (order_ref, ident, customer_ref, product_id) in enumerate(
        qs.iterator(chunk_size=CHUNK), 1
    ):
        o = orders.get(order_ref)
        if o is None:
            o = orders[order_ref] = len(orders)
            key = effective_identity(ident, customer_ref, order_ref)
            c = customers.get(key)
            if c is None:
                c = customers[key] = len(customers)
            order_customer.append(c)
        rows.append(o)
        cols.append(index[product_id])
        n += 1
        if progress and n % CHUNK == 0:
            progress("extract", n / max(total, 1), n)
    return _Lines(
        np.asarray(rows, dtype=np.int64),
        np.asarray(cols, dtype=np.int64),
        len(orders),
        np.asarray(order_customer, dtype=np.int64),
        len(customers),
    )


#: One row of the binary COPY: field count, then (length, int8) for the two hashes of the
#: order reference, the two of the identity, and the product id.
_ROW = np.dtype(
    [("fields", ">i2")]
    + [
        (f"{name}_{part}", t)
        for name in ("o0", "o1", "c0", "c1", "p")
        for part, t in (("len", ">i4"), ("v", ">i8"))
    ]
)
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
#: Bytes of COPY data parsed at once (a multiple of rows is kept for the next block).
_BLOCK = 1 << 22


def _purchases_postgresql(
    db: str, product_ids: npt.NDArray[np.int64], progress: ProgressFn | None
) -> _Lines:
    conn = connections[db]
    qn = conn.ops.quote_name
    table = qn(Purchase._meta.db_table)
    order_col = qn(Purchase._meta.get_field("order_ref").column)
    identity_expr = identity_sql(quote=qn)
    product_col = qn(Purchase._meta.get_field("product").column)
    pk_col = qn(Purchase._meta.pk.column)
    select = (
        f"SELECT hashtextextended({order_col}, 0), hashtextextended({order_col}, 1),"
        f" hashtextextended({identity_expr}, 0), hashtextextended({identity_expr}, 1),"
        f" {product_col}::int8 FROM {table}"
    )
    parts: list[tuple[npt.NDArray[np.int64], ...]] = []
    lookup = item_lookup(product_ids)
    n = 0
    with conn.cursor() as cursor:
        cursor.execute(
            f"SELECT min({pk_col}), max({pk_col}), (SELECT greatest(reltuples, 0)::int8"
            f" FROM pg_class WHERE oid = %s::regclass) FROM {table}",
            [Purchase._meta.db_table],
        )
        low, high, estimate = cursor.fetchone()
        if estimate <= 0 and isinstance(low, int) and isinstance(high, int):
            estimate = high - low + 1  # never analysed: the key span bounds the count
        # Several statements over ranges of primary keys: between two, ``progress`` may use
        # this connection (the build's progress), which it must not while a COPY is open.
        for a, b in _ranges(low, high, estimate):
            conditions = [f"{pk_col} >= {a}"] if a is not None else []
            conditions += [f"{pk_col} < {b}"] if b is not None else []
            where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            sql = f"COPY ({select}{where}) TO STDOUT (FORMAT BINARY)"
            n += _read_copy(conn.connection, sql, parts, lookup)
            if progress:
                progress("extract", min(n / max(estimate, n + 1), 0.99), n)
    o0, o1, c0, c1, item = (
        np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        for i in range(5)
    )
    order, first_line, n_orders = hashed_codes(o0, o1)
    del o0, o1
    # Every order has an identity (a guest's order without an email is its own), so the
    # customers are the distinct identities of the orders' first lines.
    customer, _, n_customers = hashed_codes(c0[first_line], c1[first_line])
    return _Lines(order, item, n_orders, customer, n_customers)


def copy_out(raw: Any, sql: str, block_size: int = _BLOCK) -> Iterator[bytearray]:
    """The data of ``COPY ... TO STDOUT`` on a psycopg 3 connection, in blocks of about
    ``block_size`` bytes.

    Libpq hands COPY data over one row at a time; psycopg's ``Copy`` spends about a microsecond
    of Python on each, which is most of the client's time for millions of narrow rows. This
    loop calls libpq directly (psycopg's public ``pq`` layer) and only joins bytes.
    """
    from psycopg import errors, pq

    pg = raw.pgconn
    pg.send_query(sql.encode(raw.info.encoding))
    while pg.flush():
        _wait(pg.socket, write=True)
    res = _next_result(pg)
    if res is None or res.status != pq.ExecStatus.COPY_OUT:
        _drain(pg)
        if res is None:
            raise errors.OperationalError("COPY did not start")
        raise errors.error_from_result(res, encoding=raw.info.encoding)
    finished = False
    get = pg.get_copy_data
    # one selector for the whole COPY: the loop waits for the socket thousands of times
    readable = selectors.DefaultSelector()
    readable.register(pg.socket, selectors.EVENT_READ)
    try:
        buf = bytearray()
        filled = 0
        while True:
            nbytes, data = get(1)
            if nbytes > 0:
                buf += data
                filled += nbytes
                if filled >= block_size:
                    yield buf
                    buf = bytearray()
                    filled = 0
            elif nbytes == 0:
                readable.select()
                pg.consume_input()
            elif nbytes == -1:
                break
            else:
                raise errors.OperationalError(pg.get_error_message().decode(errors="replace"))
        finished = True
        yield buf
    finally:
        readable.close()
        if not finished:
            # the reader stopped early: cancel the query so the connection is usable again
            raw.cancel_safe()
            with suppress(Exception):
                while (nbytes := get(1)[0]) >= 0:
                    if nbytes == 0:
                        _wait(pg.socket)
                        pg.consume_input()
        error = None
        while (res := _next_result(pg)) is not None:
            if res.status != pq.ExecStatus.COMMAND_OK and error is None:
                error = errors.error_from_result(res, encoding=raw.info.encoding)
        if error is not None and finished:
            raise error


def _next_result(pg: Any) -> Any:
    while pg.is_busy():
        _wait(pg.socket)
        pg.consume_input()
    return pg.get_result()


def _drain(pg: Any) -> None:
    while _next_result(pg) is not None:
        pass


def _wait(fd: int, write: bool = False) -> None:
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_WRITE if write else selectors.EVENT_READ)
        sel.select()


#: Purchase lines read by one COPY statement (progress is reported between statements).
STATEMENT_ROWS = 1_000_000


def _ranges(
    low: int | None, high: int | None, estimate: int
) -> list[tuple[int | None, int | None]]:
    """Primary-key ranges of about ``STATEMENT_ROWS`` lines; the first and last are open."""
    if low is None or high is None:
        return [(None, None)]
    count = max(1, min(-(-estimate // STATEMENT_ROWS), high - low + 1))
    cuts = [low + (high + 1 - low) * i // count for i in range(1, count)]
    return list(zip([None, *cuts], [*cuts, None], strict=True))


def _read_copy(
    raw: Any,
    sql: str,
    parts: list[tuple[npt.NDArray[np.int64], ...]],
    lookup: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]],
) -> int:
    """Run one binary ``COPY ... TO STDOUT`` of the purchase columns into ``parts``."""
    n = 0
    buf = bytearray()
    header = True
    for block in copy_out(raw, sql):
        buf += block
        if header:
            if len(buf) < 19:
                continue
            del buf[: _header_size(buf)]
            header = False
        n += _take_rows(buf, parts, lookup)
    if header or bytes(buf) != b"\xff\xff":
        raise ValueError("unexpected end of the COPY data")
    return n


def _header_size(buf: bytearray) -> int:
    if bytes(buf[:11]) != _SIGNATURE:
        raise ValueError("not a binary COPY stream")
    return 19 + int.from_bytes(buf[15:19], "big")


def _take_rows(
    buf: bytearray,
    parts: list[tuple[npt.NDArray[np.int64], ...]],
    lookup: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]],
) -> int:
    """Parse the whole rows at the start of ``buf`` into ``parts`` and remove them."""
    n = len(buf) // _ROW.itemsize
    if n == 0:
        return 0
    rows = np.frombuffer(buf, dtype=_ROW, count=n)
    if (rows["fields"] != 5).any() or any(
        (rows[f"{f}_len"] != 8).any() for f in ("o0", "o1", "c0", "c1", "p")
    ):
        raise ValueError("unexpected row in the COPY data")
    pid = rows["p_v"].astype(np.int64)
    item = lookup(pid)
    if (item < 0).any():
        raise KeyError(int(pid[item < 0][0]))
    hashes = [rows[f"{f}_v"].astype(np.int64) for f in ("o0", "o1", "c0", "c1")]
    parts.append((*hashes, item.astype(np.int64)))
    del rows
    del buf[: n * _ROW.itemsize]
    return n


def item_lookup(
    product_ids: npt.NDArray[np.int64],
) -> Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]]:
    """A vectorised map from product primary keys to item indices (-1: not a product).

    ``product_ids`` is sorted. Keys of most catalogs are dense, so a table indexed by key is
    used when it is at most a few times the catalog; a binary search otherwise.
    """
    n = len(product_ids)
    low = int(product_ids[0]) if n else 0
    span = int(product_ids[-1]) - low + 1 if n else 0
    if n and span <= 4 * n + 1024:
        table = np.full(span, -1, dtype=np.int64)
        table[product_ids - low] = np.arange(n, dtype=np.int64)

        def by_table(pid: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
            pos = pid - low
            inside = (pos >= 0) & (pos < span)
            return np.where(inside, table[np.where(inside, pos, 0)], -1)

        return by_table

    def by_search(pid: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        item = np.searchsorted(product_ids, pid)
        found = item < n
        found[found] = product_ids[item[found]] == pid[found]
        return np.where(found, item, -1)

    return by_search


def hashed_codes(
    h0: npt.NDArray[np.int64], h1: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Dense codes of the values whose two hashes are ``h0`` and ``h1``.

    Returns
    -------
    codes, first, n
        ``codes[i]`` numbers the values in order of first appearance; ``first[c]`` is the
        position where code ``c`` first appears; ``n`` is the number of distinct values.
    """
    if len(h0) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    runs = _distinct_runs(h0, h1)
    if runs is not None:
        return runs
    order = np.argsort(h0)
    s0, s1 = h0[order], h1[order]
    new = np.empty(len(order), dtype=bool)
    new[0] = True
    np.not_equal(s0[1:], s0[:-1], out=new[1:])
    if ((s1[1:] != s1[:-1]) & ~new[1:]).any():
        # two values share the first hash: tell them apart by the second
        order = np.lexsort((h1, h0))
        s0, s1 = h0[order], h1[order]
        new[1:] = (s0[1:] != s0[:-1]) | (s1[1:] != s1[:-1])
    del s0, s1
    sorted_codes = np.cumsum(new) - 1
    n = int(sorted_codes[-1]) + 1
    first = np.minimum.reduceat(order, np.flatnonzero(new))
    relabel = np.empty(n, dtype=np.int64)
    by_first = np.argsort(first)
    relabel[by_first] = np.arange(n, dtype=np.int64)
    codes = np.empty(len(order), dtype=np.int64)
    codes[order] = relabel[sorted_codes]
    return codes, first[by_first], n


def _distinct_runs(
    h0: npt.NDArray[np.int64], h1: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int] | None:
    """:func:`hashed_codes` when each value's entries are all adjacent, else ``None``.

    An order's lines are stored together, so they usually come out of the table in one run:
    then the runs are the values, numbered as they come, and only the runs' first entries
    (one per order, not one per line) need sorting, to check that no value has two runs.
    Values that hardly repeat in runs (customers of orders) go straight to the general path.
    """
    start = np.empty(len(h0), dtype=bool)
    start[0] = True
    start[1:] = (h0[1:] != h0[:-1]) | (h1[1:] != h1[:-1])
    first = np.flatnonzero(start)
    if len(first) > len(h0) // 2:
        return None
    heads = np.sort(h0[first])
    if (heads[1:] == heads[:-1]).any():
        return None  # a value in two runs (or two values sharing a hash): the general path
    return np.cumsum(start) - 1, first.astype(np.int64), len(first)


def _read_products(with_content: bool) -> tuple[npt.NDArray[np.int64], ItemContent | None]:
    # The catalog gives one row per product whatever the mapping crosses (a product with two
    # categories or two stock records is still one item), ordered by primary key.
    catalog = get_catalog()
    if not with_content:
        qs = catalog.products().order_by("pk").values_list("pk", flat=True)
        return np.fromiter(qs.iterator(chunk_size=CHUNK), dtype=np.int64), None
    rows = list(catalog.content_rows())
    # one transposition in C instead of an append per value
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 5
    del rows
    pks, names, texts, categories, price_values = columns
    prices = np.array([np.nan if v is None else float(v) for v in price_values], dtype=np.float64)
    content = ItemContent(list(names), list(texts), list(categories), prices)
    return np.asarray(pks, dtype=np.int64), content
