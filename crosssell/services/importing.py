"""Bulk import of the interchange format (``products.csv.gz``, ``purchases.csv.gz``).

Validation comes first and writing second, all in one transaction: a bad line raises
:class:`ImportFormatError` naming the file, the line, the column and the reason, and leaves the
database as it was. On PostgreSQL (psycopg 3) the purchase lines travel by ``COPY`` into a
temporary staging table and reach the Purchase table with one ``INSERT ... SELECT ... ON CONFLICT
DO NOTHING``; elsewhere they go through ``bulk_create``.
"""

from __future__ import annotations

import csv
import gzip
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, NoReturn

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connection, models, transaction
from tqdm import tqdm

from crosssell.conf import settings
from crosssell.models import Purchase, get_product_model, product_field
from crosssell.services.catalog import get_catalog
from crosssell.services.identity import effective_identity
from crosssell.services.products import catalog_changed

PRODUCT_COLUMNS = ("product_id", "name", "category", "price")
PURCHASE_COLUMNS = (
    "order_id",
    "customer_id",
    "product_id",
    "quantity",
    "unit_price",
    "purchased_at",
)
#: The product-file columns and the ``CROSSSELL_PRODUCT_FIELDS`` role each one is written to.
PRODUCT_ROLES = {"name": "name", "category": "category", "price": "price"}
#: A physical line longer than this is refused before the csv module sees it.
MAX_LINE_BYTES = 64 * 1024
MAX_QUANTITY = 2**31 - 1  # PositiveIntegerField's upper bound on every backend
BATCH_SIZE = 2000
_PROGRESS_EVERY = 1 << 14  # lines between progress-bar updates
_DECIMAL = re.compile(r"(-?)([0-9]*)(?:\.([0-9]*))?")
_INTEGER = re.compile(r"[+-]?[0-9]+")


class ImportFormatError(ValueError):
    """A file that cannot be imported, with where (line and column, when known) and why."""

    def __init__(self, file: str, line: int | None, column: str | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.reason}"


class ImportConfigError(ValueError):
    """The product model or its field mapping cannot take the import."""


@dataclass(frozen=True)
class ImportReport:
    """What an import did."""

    products_read: int = 0
    products_created: int = 0
    products_updated: int = 0
    products_unchanged: int = 0
    purchase_lines: int = 0
    purchases_inserted: int = 0
    purchases_merged: int = 0
    purchases_skipped: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One human-readable paragraph."""
        return (
            f"Products: {self.products_read} read, {self.products_created} created, "
            f"{self.products_updated} updated, {self.products_unchanged} unchanged. "
            f"Purchase lines: {self.purchase_lines} read, "
            f"{self.purchases_inserted} inserted, {self.purchases_merged} merged into an earlier "
            f"line of the same order and product, {self.purchases_skipped} already in the "
            f"database. {self.seconds:.1f} s."
        )


# Sentinels for an empty cell: leave the current value alone (new rows get the field's default),
# or refuse the line because the field needs a value.
_KEEP = object()
_REQUIRED = object()
#: What a purchase's product_id is matched against: the mapped key field, or the primary key.
MATCHES = ("key", "pk")
Cleaner = Callable[[str], Any]
PurchaseRow = tuple[int, str, str, str, int, Decimal | None, datetime | None]


def import_interchange(
    products_path: str | Path | None = None,
    purchases_path: str | Path | None = None,
    progress: bool = False,
    match: str = "key",
) -> ImportReport:
    """Load the interchange files into the product model and Purchase, in one transaction.

    Parameters
    ----------
    products_path
        ``products.csv.gz`` (``product_id,name,category,price``): upserted by the mapped ``key``
        field; the mapped name, category and price fields are set (a role mapped to ``None`` is
        skipped). An empty price leaves an existing product's price alone.
    purchases_path
        ``purchases.csv.gz`` (``order_id,customer_id,product_id,quantity,unit_price,
        purchased_at``). Every product_id must be in the products file or the database. Lines
        of the same order and product are merged (quantities summed, the first line's other
        values kept); lines whose order and product are already in the database are skipped, so
        importing the same file twice inserts nothing the second time.
    progress
        Show tqdm progress bars on stderr.
    match
        What a purchase's ``product_id`` is: ``"key"`` (the mapped ``key`` field, the default)
        or ``"pk"`` (the product's primary key, for a shop whose key field is blank or not
        unique). With ``"pk"`` only a purchases file is read: products are created and updated
        by their key.

    Returns
    -------
    ImportReport
        The counts.

    Raises
    ------
    ImportFormatError
        A file is missing, too large, not gzip, truncated, not UTF-8, or has a bad header or line.
        Nothing is written.
    ImportConfigError
        The product model cannot be written through ``CROSSSELL_PRODUCT_FIELDS``.
    """
    started = time.perf_counter()
    if products_path is None and purchases_path is None:
        raise ValueError("Give a products file, a purchases file or both.")
    if match not in MATCHES:
        raise ValueError(f"match must be one of {', '.join(MATCHES)}, not {match!r}")
    if match == "pk" and products_path is not None:
        raise ImportConfigError(
            "Matching product_id against the primary key reads a purchases file only: import "
            "the products file with match='key' (--match key), then the purchases."
        )
    model = get_product_model()
    key_field = _key_field(model) if match == "key" else _pk_field(model)
    writes = _product_writes(model) if products_path is not None else {}
    products: list[tuple[int, str, dict[str, Any]]] = []
    if products_path is not None:
        products = _read_products(Path(products_path), key_field, writes, progress)
    report: dict[str, int] = {"products_read": len(products)}
    # Everything, the reading of existing products included, sees one consistent state.
    with transaction.atomic():
        existing = _existing_products(model, key_field, writes)
        changed = [row for row in products if _new_or_changed(row[1], row[2], existing)]

        def write_products() -> None:
            # Unchanged products are not written: a daily re-export costs one read.
            _write_products(model, key_field, changed)

        if purchases_path is None:
            write_products()
        else:
            load = _import_purchases_copy if _use_copy() else _import_purchases_orm
            known = existing.keys() | {key for _, key, _ in products}
            report.update(
                load(Path(purchases_path), model, key_field, known, write_products, progress)
            )
        created = sum(1 for _, key, _ in changed if key not in existing)
        report["products_created"] = created
        report["products_updated"] = len(changed) - created
        report["products_unchanged"] = len(products) - len(changed)
        if changed:
            catalog_changed()  # written in bulk, without signals: the cached widgets go stale
    return ImportReport(**report, seconds=time.perf_counter() - started)


# --- the product model and its mapping ------------------------------------------------------


def _existing_products(
    model: type[models.Model],
    key_field: models.Field[Any, Any],
    writes: dict[str, models.Field[Any, Any]],
) -> dict[str, dict[str, Any]]:
    """Key (as text) -> {attname: current value} of the fields the products file writes."""
    attnames = [f.attname for f in writes.values()]
    rows = model._base_manager.values_list(key_field.attname, *attnames)
    return {
        str(key): dict(zip(attnames, values, strict=True))
        for key, *values in rows.iterator(chunk_size=10_000)
    }


def _new_or_changed(key: str, values: dict[str, Any], existing: dict[str, dict[str, Any]]) -> bool:
    current = existing.get(key)
    return current is None or any(current[a] != value for a, value in values.items())


def _mapped_field(model: type[models.Model], role: str) -> models.Field[Any, Any] | None:
    # the key as the catalog names it (a shop framework's catalog maps no fields)
    lookup = get_catalog().key_lookup() if role == "key" else product_field(role)
    if not lookup:
        return None
    try:
        field = model._meta.get_field(lookup)
    except FieldDoesNotExist:
        field = None
    if not isinstance(field, models.Field) or not field.concrete or field.is_relation:
        raise ImportConfigError(
            f"CROSSSELL_PRODUCT_FIELDS[{role!r}] = {lookup!r} is not a plain field of "
            f"{model._meta.label}; the importer can only write the model's own columns. Map the "
            f"{role!r} role to such a field, or to None to skip it."
        )
    return field


def _pk_field(model: type[models.Model]) -> models.Field[Any, Any]:
    field = model._meta.pk
    assert isinstance(field, models.Field)
    return field


def _key_field(model: type[models.Model]) -> models.Field[Any, Any]:
    field = _mapped_field(model, "key")
    if field is None:
        raise ImportConfigError("CROSSSELL_PRODUCT_FIELDS['key'] is required by the importer.")
    single_unique = any(
        isinstance(c, models.UniqueConstraint)
        and tuple(c.fields) == (field.name,)
        and c.condition is None
        for c in model._meta.constraints
    )
    if not (field.unique or single_unique):
        raise ImportConfigError(
            f"{model._meta.label}.{field.name} (CROSSSELL_PRODUCT_FIELDS['key']) must be unique: "
            "products are upserted by it."
        )
    return field


def _product_writes(model: type[models.Model]) -> dict[str, models.Field[Any, Any]]:
    """Product-file column -> model field; fails when an unmapped field needs a value."""
    writes = {
        column: field
        for column, role in PRODUCT_ROLES.items()
        if (field := _mapped_field(model, role)) is not None
    }
    written = {f.name for f in writes.values()} | {_key_field(model).name}
    missing = [
        f.name for f in model._meta.concrete_fields if f.name not in written and _needs_value(f)
    ]
    if missing:
        raise ImportConfigError(
            f"{model._meta.label} has required fields the products file does not fill: "
            f"{', '.join(missing)}. Give them a default, make them nullable, or map them in "
            "CROSSSELL_PRODUCT_FIELDS (key, name, category, price)."
        )
    return writes


def _needs_value(field: models.Field[Any, Any]) -> bool:
    if field.primary_key or field.generated or field.null or field.has_default():
        return False
    if _has_db_default(field) or getattr(field, "auto_now", False):
        return False
    if getattr(field, "auto_now_add", False):
        return False
    return not (field.blank and field.empty_strings_allowed)


def _has_db_default(field: models.Field[Any, Any]) -> bool:
    return getattr(field, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED


def _empty_value(field: models.Field[Any, Any]) -> Any:
    if field.blank and field.empty_strings_allowed:
        return ""
    if field.null:
        return None
    if field.has_default() or _has_db_default(field):
        return _KEEP
    return _REQUIRED


def _cleaner(field: models.Field[Any, Any]) -> Cleaner:
    """A function from a non-empty cell to the field's value; raises ValueError with a reason."""
    if isinstance(field, models.DecimalField):
        digits, places = field.max_digits, field.decimal_places
        return lambda text: _decimal(text, digits, places)
    if isinstance(field, models.CharField | models.TextField):
        limit = field.max_length

        def text_value(text: str) -> str:
            if limit is not None and len(text) > limit:
                raise ValueError(f"longer than {limit} characters")
            return text

        return text_value
    if isinstance(field, models.FloatField):
        return _float
    if isinstance(field, models.IntegerField):
        return _integer

    def any_value(text: str) -> Any:
        try:
            value = field.to_python(text)
            field.run_validators(value)
        except ValidationError as exc:
            raise ValueError("; ".join(exc.messages)) from exc
        return value

    return any_value


def _decimal(text: str, max_digits: int | None, places: int | None) -> Decimal:
    match = _DECIMAL.fullmatch(text)
    if match is None or not (match.group(2) or match.group(3)):
        raise ValueError(f"not a decimal number: {_show(text)}")
    if match.group(1):
        raise ValueError(f"negative: {_show(text)}")
    whole = match.group(2).lstrip("0")
    fraction = (match.group(3) or "").rstrip("0")
    if places is not None and len(fraction) > places:
        raise ValueError(f"more than {places} decimal places: {_show(text)}")
    if max_digits is not None and len(whole) > max_digits - (places or 0):
        raise ValueError(f"too large for {max_digits} digits: {_show(text)}")
    return Decimal(text)


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {_show(text)}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise ValueError(f"not a finite non-negative number: {_show(text)}")
    return value


def _integer(text: str) -> int:
    if _INTEGER.fullmatch(text) is None:
        raise ValueError(f"not a whole number: {_show(text)}")
    return int(text)


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


# --- reading a gzip CSV file ----------------------------------------------------------------


class _CsvFile:
    """The records of one gzip CSV file, with the header checked and line numbers kept."""

    def __init__(self, path: Path, columns: tuple[str, ...], bar: tqdm[Any]) -> None:
        self.path = path
        self.name = str(path)
        self.columns = columns
        self.bar = bar
        self.header: list[str] = []
        self.indexes: list[int] = []
        self.line = 0
        if not path.is_file():
            raise ImportFormatError(self.name, None, None, "no such file")
        size = path.stat().st_size
        limit = settings.IMPORT_MAX_BYTES
        if size > limit:
            reason = (
                f"the file has {size:,} bytes, more than CROSSSELL_IMPORT_MAX_BYTES ({limit:,})"
            )
            raise ImportFormatError(self.name, None, None, reason)
        if size == 0:
            raise ImportFormatError(self.name, None, None, "the file is empty (0 bytes)")
        bar.reset(total=size)

    def error(self, reason: str, column: str | None = None, line: int | None = None) -> NoReturn:
        raise ImportFormatError(self.name, line or self.line, column, reason)

    def __iter__(self) -> Iterator[list[str]]:
        """The data lines, their fields in the order of ``columns`` (extra columns dropped)."""
        with open(self.path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            reader = csv.reader(self._lines(gz, raw), strict=True)
            try:
                yield from self._records(reader)
            except csv.Error as exc:
                raise ImportFormatError(
                    self.name, self.line, None, f"malformed CSV: {exc}"
                ) from exc
            except EOFError as exc:
                reason = f"truncated gzip file ({exc}) after {self.line:,} lines"
                raise ImportFormatError(self.name, self.line, None, reason) from exc
            except (gzip.BadGzipFile, zlib.error) as exc:
                reason = f"not a valid gzip file ({exc})"
                raise ImportFormatError(self.name, self.line or None, None, reason) from exc
            except OSError as exc:
                raise ImportFormatError(self.name, self.line, None, f"cannot read: {exc}") from exc
            self.bar.update(self.bar.total - self.bar.n)

    def _records(self, reader: Any) -> Iterator[list[str]]:
        header = next(reader, None)
        if header is None:
            raise ImportFormatError(self.name, None, None, "the file is empty (no header line)")
        assert header is not None
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        self.header = header
        missing = [c for c in self.columns if c not in header]
        if missing:
            self.error(
                f"missing column(s) {', '.join(missing)} in the header; expected "
                f"{','.join(self.columns)}",
                column=missing[0],
                line=1,
            )
        duplicated = sorted({c for c in header if header.count(c) > 1})
        if duplicated:
            self.error(f"duplicated column(s) {', '.join(duplicated)}", column=duplicated[0])
        self.indexes = [header.index(c) for c in self.columns]
        width = len(header)
        indexes = None if header == list(self.columns) else self.indexes
        for row in reader:
            if len(row) != width:
                if not row:
                    continue  # a blank line, typically the last one
                self.error(f"{len(row)} fields, expected {width} as in the header")
            yield row if indexes is None else [row[i] for i in indexes]

    def _lines(self, gz: gzip.GzipFile, raw: IO[bytes]) -> Iterator[str]:
        # Line by line with a length cap, so one endless line cannot exhaust memory and a decoding
        # error names the exact line.
        bar, done = self.bar, 0
        while True:
            data = gz.readline(MAX_LINE_BYTES + 1)
            if not data:
                return
            self.line += 1
            if len(data) > MAX_LINE_BYTES:
                self.error(f"the line is longer than {MAX_LINE_BYTES:,} bytes")
            if b"\x00" in data:  # PostgreSQL text cannot hold it, and no CSV export means it
                self.error("a NUL byte", self._bad_column(data, _has_nul))
            try:
                yield data.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"not UTF-8: {exc.reason} at byte {exc.start}"
                self.error(reason, self._bad_column(data, _has_undecodable))
            if not self.line % _PROGRESS_EVERY:
                position = raw.tell()
                bar.update(position - done)
                done = position

    def _bad_column(self, data: bytes, is_bad: Callable[[str], bool]) -> str | None:
        """The header name of the first field of a line that ``is_bad``."""
        fields = next(csv.reader([data.decode("utf-8", "surrogateescape")]), [])
        for i, value in enumerate(fields):
            if is_bad(value):
                return self.header[i] if i < len(self.header) else f"field {i + 1}"
        return None


def _has_nul(value: str) -> bool:
    return "\x00" in value


def _has_undecodable(value: str) -> bool:
    # surrogateescape turns each byte that is not UTF-8 into U+DC80..U+DCFF
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _bar(desc: str, progress: bool) -> tqdm[Any]:
    return tqdm(
        desc=desc,
        total=0,
        unit="B",
        unit_scale=True,
        file=sys.stderr,
        disable=not progress,
        leave=progress,
    )


# --- products ---------------------------------------------------------------------------------


def _read_products(
    path: Path,
    key_field: models.Field[Any, Any],
    writes: dict[str, models.Field[Any, Any]],
    progress: bool,
) -> list[tuple[int, str, dict[str, Any]]]:
    """Validate the products file into (line, key, {attname: value}) without writing anything."""
    with _bar(f"reading {path.name}", progress) as bar:
        source = _CsvFile(path, PRODUCT_COLUMNS, bar)
        clean_key = _cleaner(key_field)
        plan = [
            (
                PRODUCT_COLUMNS.index(column),
                column,
                field.attname,
                _cleaner(field),
                _empty_value(field),
            )
            for column, field in writes.items()
        ]
        rows: list[tuple[int, str, dict[str, Any]]] = []
        seen: dict[str, int] = {}
        for row in source:
            line = source.line
            key_text = row[0]
            if not key_text:
                source.error("empty product_id", "product_id")
            try:
                key = str(clean_key(key_text))
            except ValueError as exc:
                source.error(str(exc), "product_id")
            if key in seen:
                source.error(f"product {_show(key)} is already on line {seen[key]}", "product_id")
            seen[key] = line
            values: dict[str, Any] = {}
            for position, column, attname, clean, empty in plan:
                text = row[position]
                if text:
                    try:
                        values[attname] = clean(text)
                    except ValueError as exc:
                        source.error(str(exc), column)
                elif empty is _REQUIRED:
                    source.error(
                        f"empty, but the product model's field {attname!r} needs a value", column
                    )
                elif empty is not _KEEP:
                    values[attname] = empty
            rows.append((line, key, values))
        return rows


def _write_products(
    model: type[models.Model],
    key_field: models.Field[Any, Any],
    rows: list[tuple[int, str, dict[str, Any]]],
) -> None:
    # Rows that leave different fields alone (an empty price) need different update lists.
    groups: dict[tuple[str, ...], list[models.Model]] = {}
    for _, key, values in rows:
        obj = model(**{key_field.attname: key, **values})
        groups.setdefault(tuple(sorted(values)), []).append(obj)
    manager = model._base_manager
    for fields, objs in groups.items():
        if fields:
            manager.bulk_create(
                objs,
                batch_size=BATCH_SIZE,
                update_conflicts=True,
                unique_fields=[key_field.name],
                update_fields=[model._meta.get_field(a).name for a in fields],
            )
        else:
            manager.bulk_create(objs, batch_size=BATCH_SIZE, ignore_conflicts=True)


# --- purchases --------------------------------------------------------------------------------


def _purchase_rows(source: _CsvFile, known: set[str]) -> Iterator[PurchaseRow]:
    """Validated purchase lines: (line, order, customer, product key, quantity, price, time)."""
    meta = Purchase._meta
    order_max = meta.get_field("order_ref").max_length or 64
    customer_max = meta.get_field("customer_ref").max_length or 64
    price_field = meta.get_field("unit_price")
    assert isinstance(price_field, models.DecimalField)
    digits, places = price_field.max_digits, price_field.decimal_places
    error = source.error
    for row in source:
        order, customer, key, quantity_text, price_text, at_text = row
        if not order or len(order) > order_max:
            error(f"must be 1 to {order_max} characters: {_show(order)}", "order_id")
        if len(customer) > customer_max:
            error(f"longer than {customer_max} characters", "customer_id")
        if key not in known:
            error(
                f"unknown product {_show(key)}: not in the products file nor the database",
                "product_id",
            )
        if quantity_text.isdigit() and quantity_text.isascii():
            quantity = int(quantity_text)
            if not 1 <= quantity <= MAX_QUANTITY:
                error(f"must be between 1 and {MAX_QUANTITY}: {_show(quantity_text)}", "quantity")
        elif _INTEGER.fullmatch(quantity_text):
            error(f"must be a positive whole number: {_show(quantity_text)}", "quantity")
        else:
            error(f"not a whole number: {_show(quantity_text)}", "quantity")
        price = None
        if price_text:
            try:
                price = _decimal(price_text, digits, places)
            except ValueError as exc:
                error(str(exc), "unit_price")
        at = None
        if at_text:
            try:
                at = datetime.fromisoformat(at_text)
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
            except ValueError:
                error(f"not an ISO 8601 date and time: {_show(at_text)}", "purchased_at")
            except OverflowError:  # found by the fuzzer: 0001-01-01T00:00+05:00 is before year 1
                error(f"out of range in UTC: {_show(at_text)}", "purchased_at")
        yield source.line, order, customer, key, quantity, price, at


def _column(model: type[models.Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    return str(field.column)


def _use_copy() -> bool:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return connection.vendor == "postgresql" and is_psycopg3


def _import_purchases_copy(
    path: Path,
    model: type[models.Model],
    key_field: models.Field[Any, Any],
    known: set[str],
    write_products: Callable[[], None],
    progress: bool,
) -> dict[str, int]:
    """PostgreSQL: COPY into a staging table, merge there, then one INSERT ... SELECT."""
    q = connection.ops.quote_name
    # Qualified, so that no name can ever resolve to a permanent table.
    staging, merged = "pg_temp.crosssell_import_staging", "pg_temp.crosssell_import_merged"
    names = (
        "order_ref", "customer_ref", "identity", "product", "quantity", "unit_price", "purchased_at"
    )  # fmt: skip
    targets = ", ".join(q(_column(Purchase, name)) for name in names)
    unique = f"{q(_column(Purchase, 'order_ref'))}, {q(_column(Purchase, 'product'))}"
    lines = 0
    with connection.cursor() as cursor:
        # Sorting 1e6+ lines in memory instead of on disk; SET LOCAL ends with the transaction.
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(f"DROP TABLE IF EXISTS {staging}, {merged}")
        # COLLATE "C": the merge sorts by these columns, and byte order is all it needs.
        cursor.execute(
            f'CREATE TEMPORARY TABLE {staging} (line bigint, order_ref text COLLATE "C", '
            'customer_ref text, product_key text COLLATE "C", quantity bigint, '
            "unit_price numeric, purchased_at timestamptz)"
        )
        with _bar(f"reading {path.name}", progress) as bar:
            source = _CsvFile(path, PURCHASE_COLUMNS, bar)
            raw_cursor: Any = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
            with raw_cursor.copy(f"COPY {staging} FROM STDIN") as copy:
                write_row = copy.write_row
                for row in _purchase_rows(source, known):
                    write_row(row)
                    lines += 1
        with tqdm(
            total=4,
            desc="writing",
            unit="step",
            file=sys.stderr,
            disable=not progress,
            leave=progress,
        ) as steps:
            steps.set_postfix_str("merging duplicate lines")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {merged} AS "
                "SELECT DISTINCT ON (order_ref, product_key) order_ref, customer_ref, "
                "product_key, unit_price, purchased_at, sum(quantity) OVER w AS quantity, "
                "max(line) OVER w AS last_line FROM "
                f"{staging} WINDOW w AS (PARTITION BY order_ref, product_key ORDER BY line "
                "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) "
                "ORDER BY order_ref, product_key, line"
            )
            groups = cursor.rowcount
            cursor.execute(
                f"SELECT last_line FROM {merged} WHERE quantity > %s ORDER BY last_line LIMIT 1",
                [MAX_QUANTITY],
            )
            too_many = cursor.fetchone()
            if too_many:
                source.error(
                    f"the merged quantity of this order and product exceeds {MAX_QUANTITY}",
                    "quantity",
                    line=int(too_many[0]),
                )
            steps.update()
            steps.set_postfix_str("products")
            write_products()
            steps.update()
            steps.set_postfix_str("purchases")
            product_pk = q(_column(model, model._meta.pk.name))
            cursor.execute(
                f"INSERT INTO {q(Purchase._meta.db_table)} ({targets}) "
                # The identity as crosssell.services.identity.effective_identity has it: the
                # customer, else the order (an interchange file holds no emails).
                "SELECT m.order_ref, m.customer_ref, CASE WHEN m.customer_ref <> '' "
                "THEN 'u:' || m.customer_ref ELSE 'o:' || m.order_ref END, "
                f"p.{product_pk}, m.quantity, m.unit_price, "
                f"m.purchased_at FROM {merged} m JOIN {q(model._meta.db_table)} p "
                f'ON p.{q(key_field.column)}::text COLLATE "C" = m.product_key '
                f"ON CONFLICT ({unique}) DO NOTHING"
            )
            inserted = cursor.rowcount
            steps.update()
            cursor.execute(f"DROP TABLE {staging}, {merged}")
            # The foreign keys are deferred to the commit, where a million checks would run
            # with no progress shown; run them now, as their own step.
            steps.set_postfix_str("checking foreign keys")
            connection.check_constraints([Purchase._meta.db_table])
            steps.update()
    return {
        "purchase_lines": lines,
        "purchases_inserted": inserted,
        "purchases_merged": lines - groups,
        "purchases_skipped": groups - inserted,
    }


def _import_purchases_orm(
    path: Path,
    model: type[models.Model],
    key_field: models.Field[Any, Any],
    known: set[str],
    write_products: Callable[[], None],
    progress: bool,
) -> dict[str, int]:
    """Any other database: merge in memory, then ``bulk_create(ignore_conflicts=True)``."""
    merged: dict[tuple[str, str], list[Any]] = {}
    lines = 0
    with _bar(f"reading {path.name}", progress) as bar:
        source = _CsvFile(path, PURCHASE_COLUMNS, bar)
        for line, order, customer, key, quantity, price, at in _purchase_rows(source, known):
            lines += 1
            first = merged.get((order, key))
            if first is None:
                merged[order, key] = [customer, quantity, price, at]
            else:
                first[1] += quantity
                if first[1] > MAX_QUANTITY:
                    source.error(
                        f"the merged quantity of this order and product exceeds {MAX_QUANTITY}",
                        "quantity",
                        line=line,
                    )
    write_products()
    pk_of = {
        str(k): pk for k, pk in model._base_manager.values_list(key_field.attname, "pk").iterator()
    }
    before = Purchase.objects.count()
    Purchase.objects.bulk_create(
        (
            Purchase(
                order_ref=order,
                customer_ref=customer,
                identity=effective_identity("", customer, order),
                product_id=pk_of[key],
                quantity=quantity,
                unit_price=price,
                purchased_at=at,
            )
            for (order, key), (customer, quantity, price, at) in merged.items()
        ),
        batch_size=BATCH_SIZE,
        ignore_conflicts=True,
    )
    inserted = Purchase.objects.count() - before
    return {
        "purchase_lines": lines,
        "purchases_inserted": inserted,
        "purchases_merged": lines - len(merged),
        "purchases_skipped": len(merged) - inserted,
    }
