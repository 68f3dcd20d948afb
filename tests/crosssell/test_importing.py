"""The bulk importer: the interchange files into the product model and Purchase.

Product fields are read and written through ``CROSSSELL_PRODUCT_FIELDS``, so the same tests run
with the default product and with ``DJANGO_SETTINGS_MODULE=tests.settings_swapped``.
"""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from crosssell.conf import settings as cs_settings
from crosssell.models import Purchase, get_product_model, product_field
from crosssell.services.importing import (
    MAX_LINE_BYTES,
    ImportConfigError,
    ImportFormatError,
    import_interchange,
)

pytestmark = pytest.mark.django_db

PRODUCTS = (
    "product_id,name,category,price\n"
    "p1,Espresso beans,Coffee > Beans,12.50\n"
    "p2,Milk frother,Coffee > Tools,29\n"
    'p3,"Mug, large",,7.00\n'
)
PURCHASES = (
    "order_id,customer_id,product_id,quantity,unit_price,purchased_at\n"
    "o1,c1,p1,1,12.50,2024-03-01T10:00:00Z\n"
    "o1,c1,p2,2,29.00,2024-03-01T10:00:00Z\n"
    "o1,c1,p1,3,11.00,2024-03-01T10:05:00Z\n"
    "o2,,p3,1,,\n"
    "o3,c2,old,1,5.00,2024-03-02 09:30:00\n"
)
HEADER = "order_id,customer_id,product_id,quantity,unit_price,purchased_at\n"


# --- helpers: files, and the product model through the field mapping --------------------------


def gz(path: Path, content: str | bytes) -> Path:
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(gzip.compress(data))
    return path


def field(role: str) -> str:
    name = product_field(role)
    assert name, f"the test needs the {role!r} role mapped"
    return name


def make_product(key: str, name: str, price: str = "5.00") -> Any:
    model = get_product_model()
    return model._base_manager.create(
        **{field("key"): key, field("name"): name, field("price"): Decimal(price)}
    )


def product(key: str) -> Any:
    return get_product_model()._base_manager.get(**{field("key"): key})


def value(key: str, role: str) -> Any:
    return getattr(product(key), field(role))


def empty_price_allowed() -> bool:
    """Whether the mapped price field can do without a value (a default, or NULL)."""
    price = get_product_model()._meta.get_field(field("price"))
    return bool(getattr(price, "null", False) or getattr(price, "has_default", bool)())


def counts() -> tuple[int, int]:
    return get_product_model()._base_manager.count(), Purchase.objects.count()


def line(order: str, key: str) -> Purchase:
    return Purchase.objects.get(order_ref=order, product=product(key))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    make_product("old", "Old thing")
    return gz(tmp_path / "products.csv.gz", PRODUCTS), gz(tmp_path / "purchases.csv.gz", PURCHASES)


# --- good imports -----------------------------------------------------------------------------


def test_import_counts_and_values(files: tuple[Path, Path]) -> None:
    report = import_interchange(*files)

    assert (report.products_read, report.products_created, report.products_updated) == (3, 3, 0)
    assert report.purchase_lines == 5
    assert (report.purchases_inserted, report.purchases_merged, report.purchases_skipped) == (
        4,
        1,
        0,
    )
    assert counts() == (4, 4)
    assert value("p3", "name") == "Mug, large"
    assert value("p1", "category") == "Coffee > Beans"
    assert value("p3", "category") == ""
    assert value("p2", "price") == Decimal("29.00")
    # Duplicate lines of one order and product: quantities summed, the first line's values kept.
    merged = line("o1", "p1")
    assert merged.quantity == 4
    assert merged.unit_price == Decimal("12.50")
    assert merged.purchased_at == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert merged.customer_ref == "c1"
    guest = line("o2", "p3")
    assert (guest.customer_ref, guest.unit_price, guest.purchased_at) == ("", None, None)
    # A naive time is UTC; a product only in the database is a valid product_id.
    assert line("o3", "old").purchased_at == datetime(2024, 3, 2, 9, 30, tzinfo=UTC)


def test_reimport_is_idempotent(files: tuple[Path, Path]) -> None:
    import_interchange(*files)
    before = counts()

    report = import_interchange(*files)

    assert counts() == before
    assert (report.products_created, report.products_updated, report.products_unchanged) == (
        0,
        0,
        3,
    )
    assert (report.purchases_inserted, report.purchases_merged, report.purchases_skipped) == (
        0,
        1,
        4,
    )
    assert line("o1", "p1").quantity == 4


def test_new_lines_of_a_known_order_are_added(files: tuple[Path, Path], tmp_path: Path) -> None:
    import_interchange(*files)
    more = gz(tmp_path / "more.csv.gz", HEADER + "o1,c1,p1,9,,\no1,c1,p3,1,,\n")

    report = import_interchange(purchases_path=more)

    assert (report.purchases_inserted, report.purchases_skipped) == (1, 1)
    assert line("o1", "p1").quantity == 4  # the line already imported is left alone
    assert line("o1", "p3").quantity == 1


def test_products_are_updated_by_key(files: tuple[Path, Path], tmp_path: Path) -> None:
    import_interchange(products_path=files[0])
    changed = gz(
        tmp_path / "changed.csv.gz",
        "product_id,name,category,price\n"
        "p1,Espresso beans 1kg,Coffee,13.00\n"
        "p2,Milk frother,Coffee > Tools,29.00\n"  # as it is: 29 == 29.00
        "p9,New,,1\n",
    )

    report = import_interchange(products_path=changed)

    assert (report.products_created, report.products_updated, report.products_unchanged) == (
        1,
        1,
        1,
    )
    assert (value("p1", "name"), value("p1", "category"), value("p1", "price")) == (
        "Espresso beans 1kg",
        "Coffee",
        Decimal("13.00"),
    )
    assert value("p2", "name") == "Milk frother"
    assert counts() == (5, 0)


def test_empty_price_keeps_the_current_one_or_is_refused(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    import_interchange(products_path=files[0])
    no_price = gz(tmp_path / "noprice.csv.gz", "product_id,name,category,price\np1,Beans,Coffee,\n")

    if empty_price_allowed():
        import_interchange(products_path=no_price)
        assert value("p1", "name") == "Beans"
        assert value("p1", "price") == Decimal("12.50")
    else:  # the swapped shop's price has no default: an empty cell cannot make a product
        with pytest.raises(ImportFormatError, match=r"line 2, column 'price': empty"):
            import_interchange(products_path=no_price)
        assert value("p1", "name") == "Espresso beans"


def test_purchases_alone_need_products_in_the_database(tmp_path: Path) -> None:
    make_product("p1", "One")
    path = gz(tmp_path / "purchases.csv.gz", HEADER + "o1,,p1,2,,\n\n")  # a trailing blank line

    report = import_interchange(purchases_path=path)

    assert (report.products_read, report.purchase_lines, report.purchases_inserted) == (0, 1, 1)
    assert line("o1", "p1").quantity == 2


def test_columns_in_another_order_with_extras_and_a_bom(tmp_path: Path) -> None:
    products = gz(
        tmp_path / "p.csv.gz",
        "\ufeffprice,extra,product_id,category,name\n3.5,x,k1,Tea,Green tea\n",
    )
    purchases = gz(
        tmp_path / "o.csv.gz",
        "product_id,quantity,order_id,purchased_at,unit_price,customer_id,note\n"
        "k1,2,o9,2024-01-05T08:00:00+02:00,3.50,c9,hello\n",
    )

    import_interchange(products, purchases)

    assert (value("k1", "name"), value("k1", "price")) == ("Green tea", Decimal("3.50"))
    bought = line("o9", "k1")
    assert (bought.quantity, bought.customer_ref) == (2, "c9")
    assert bought.purchased_at == datetime(2024, 1, 5, 6, 0, tzinfo=UTC)


def test_command(files: tuple[Path, Path]) -> None:
    out, err = io.StringIO(), io.StringIO()

    call_command("crosssell_import", products=files[0], purchases=files[1], stdout=out, stderr=err)

    assert "4 inserted, 1 merged" in out.getvalue()
    assert counts() == (4, 4)


def test_command_reports_a_bad_line(files: tuple[Path, Path], tmp_path: Path) -> None:
    bad = gz(tmp_path / "bad.csv.gz", HEADER + "o1,c1,p1,x,,\n")

    with pytest.raises(CommandError, match=r"bad\.csv\.gz, line 2, column 'quantity'"):
        call_command("crosssell_import", products=files[0], purchases=bad, verbosity=0)
    with pytest.raises(CommandError, match="Give --products, --purchases or both"):
        call_command("crosssell_import", verbosity=0)
    assert counts() == (1, 0)


# --- bad input: a clear error, and the database unchanged -------------------------------------


def truncated_gzip() -> bytes:
    body = HEADER + "".join(f"o{i},c{i},p1,1,,\n" for i in range(20_000))
    data = gzip.compress(body.encode())
    return data[: len(data) // 2]


BAD_PURCHASES: list[tuple[str, str | bytes, int | None, str | None, str]] = [
    (
        "missing column",
        "order_id,customer_id,product_id,unit_price,purchased_at\n",
        1,
        "quantity",
        "missing column",
    ),
    (
        "unknown product",
        HEADER + "o1,c1,p1,1,,\no1,c1,nope,1,,\n",
        3,
        "product_id",
        "unknown product 'nope'",
    ),
    ("empty product", HEADER + "o1,c1,,1,,\n", 2, "product_id", "unknown product ''"),
    ("non-numeric quantity", HEADER + "o1,c1,p1,two,,\n", 2, "quantity", "not a whole number"),
    ("fractional quantity", HEADER + "o1,c1,p1,1.5,,\n", 2, "quantity", "not a whole number"),
    ("zero quantity", HEADER + "o1,c1,p1,0,,\n", 2, "quantity", "between 1 and"),
    ("negative quantity", HEADER + "o1,c1,p1,-2,,\n", 2, "quantity", "positive whole number"),
    ("empty quantity", HEADER + "o1,c1,p1,,,\n", 2, "quantity", "not a whole number"),
    ("huge quantity", HEADER + "o1,c1,p1,99999999999,,\n", 2, "quantity", "between 1 and"),
    (
        "merged quantity overflows",
        HEADER + "o1,,p1,2147483647,,\no1,,p1,1,,\n",
        3,
        "quantity",
        "merged quantity",
    ),
    (
        "price with a comma",
        HEADER + 'o1,c1,p1,1,"12,50",\n',
        2,
        "unit_price",
        "not a decimal number",
    ),
    ("negative price", HEADER + "o1,c1,p1,1,-1,\n", 2, "unit_price", "negative"),
    ("price with 3 decimals", HEADER + "o1,c1,p1,1,1.999,\n", 2, "unit_price", "decimal places"),
    ("price too large", HEADER + "o1,c1,p1,1,123456789012,\n", 2, "unit_price", "too large"),
    ("price NaN", HEADER + "o1,c1,p1,1,NaN,\n", 2, "unit_price", "not a decimal number"),
    ("bad date", HEADER + "o1,c1,p1,1,,2024-13-01\n", 2, "purchased_at", "ISO 8601"),
    ("not a date", HEADER + "o1,c1,p1,1,,yesterday\n", 2, "purchased_at", "ISO 8601"),
    ("empty order", HEADER + ",c1,p1,1,,\n", 2, "order_id", "must be 1 to 64 characters"),
    ("long order", HEADER + "o" * 65 + ",c1,p1,1,,\n", 2, "order_id", "must be 1 to 64"),
    ("long customer", HEADER + "o1," + "c" * 65 + ",p1,1,,\n", 2, "customer_id", "longer than"),
    ("too few fields", HEADER + "o1,c1,p1,1,,\no1,c1,p2,1\n", 3, None, "4 fields, expected 6"),
    ("too many fields", HEADER + "o1,c1,p1,1,,,\n", 2, None, "7 fields, expected 6"),
    (
        "non-UTF-8",
        (HEADER + "o1,c1,p1,1,,\n").encode() + b"o2,c\xff2,p1,1,,\n",
        3,
        "customer_id",
        "not UTF-8",
    ),
    ("malformed quoting", HEADER + 'o1,"c1"x,p1,1,,\n', 2, None, "malformed CSV"),
    ("NUL byte", HEADER + "o1,c\x001,p1,1,,\n", 2, "customer_id", "a NUL byte"),
    (
        "endless line",
        HEADER + "o1," + "c" * MAX_LINE_BYTES + ",p1,1,,\n",
        2,
        None,
        "longer than 65,536 bytes",
    ),
    ("empty gzip", b"", None, None, "empty (no header line)"),
]


@pytest.mark.parametrize(
    ("content", "line_no", "column", "reason"),
    [case[1:] for case in BAD_PURCHASES],
    ids=[case[0] for case in BAD_PURCHASES],
)
def test_bad_purchases_abort_everything(
    files: tuple[Path, Path],
    tmp_path: Path,
    content: str | bytes,
    line_no: int | None,
    column: str | None,
    reason: str,
) -> None:
    import_interchange(*files)
    renamed = gz(tmp_path / "renamed.csv.gz", "product_id,name,category,price\np1,Renamed,,1\n")
    new_products = gz(tmp_path / "new.csv.gz", PRODUCTS.replace("\np", "\nn"))
    bad = gz(tmp_path / "bad.csv.gz", content)
    before = counts()

    for products_file in (renamed, new_products):
        with pytest.raises(ImportFormatError) as caught:
            import_interchange(products_file, bad)
        error = caught.value
        assert (error.file, error.line, error.column) == (str(bad), line_no, column)
        assert reason in error.reason
        where = f"{bad}" + (f", line {line_no}" if line_no else "")
        assert str(error).startswith(where)
        if column:
            assert f"column {column!r}" in str(error)

    assert counts() == before
    assert value("p1", "name") == "Espresso beans"
    assert line("o1", "p1").quantity == 4


def write_raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("truncated", truncated_gzip(), "truncated gzip file"),
        ("plain text", HEADER.encode(), "not a valid gzip file"),
        ("zero bytes", b"", r"the file is empty \(0 bytes\)"),
    ],
)
def test_broken_files(
    files: tuple[Path, Path], tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    make_product("p1", "One")
    bad = write_raw(tmp_path / "bad.csv.gz", data)
    before = counts()

    with pytest.raises(ImportFormatError, match=reason) as caught:
        import_interchange(files[0], bad)

    assert caught.value.file == str(bad)
    if name == "truncated":  # the lines before the cut were read, and the count says so
        assert caught.value.line is not None and caught.value.line > 1000
    assert counts() == before


def test_file_larger_than_the_limit(files: tuple[Path, Path]) -> None:
    before = counts()
    size = files[1].stat().st_size

    with (
        override_settings(CROSSSELL_IMPORT_MAX_BYTES=size - 1),
        pytest.raises(ImportFormatError, match="CROSSSELL_IMPORT_MAX_BYTES") as caught,
    ):
        import_interchange(*files)
    assert caught.value.file == str(files[1])
    assert counts() == before

    with override_settings(CROSSSELL_IMPORT_MAX_BYTES=size):
        import_interchange(*files)
    assert counts() == (before[0] + 3, 4)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="no such file"):
        import_interchange(products_path=tmp_path / "nothing.csv.gz")


BAD_PRODUCTS: list[tuple[str, str, int, str | None, str]] = [
    ("missing column", "product_id,name,price\n", 1, "category", "missing column"),
    (
        "duplicated product",
        "product_id,name,category,price\na,A,,1\nb,B,,1\na,A2,,1\n",
        4,
        "product_id",
        "already on line 2",
    ),
    ("empty key", "product_id,name,category,price\n,A,,1\n", 2, "product_id", "empty"),
    (
        "long key",
        "product_id,name,category,price\n" + "k" * 200 + ",A,,1\n",
        2,
        "product_id",
        "longer than",
    ),
    ("empty name", "product_id,name,category,price\na,,,1\n", 2, "name", "empty"),
    (
        "long name",
        "product_id,name,category,price\na," + "n" * 300 + ",,1\n",
        2,
        "name",
        "longer than",
    ),
    (
        "bad price",
        "product_id,name,category,price\na,A,,cheap\n",
        2,
        "price",
        "not a decimal number",
    ),
    ("negative price", "product_id,name,category,price\na,A,,-3\n", 2, "price", "negative"),
    ("wrong width", "product_id,name,category,price\na,A,1\n", 2, None, "3 fields, expected 4"),
    ("duplicated header", "product_id,name,category,price,name\n", 1, "name", "duplicated"),
]


@pytest.mark.parametrize(
    ("content", "line_no", "column", "reason"),
    [case[1:] for case in BAD_PRODUCTS],
    ids=[case[0] for case in BAD_PRODUCTS],
)
def test_bad_products_abort_everything(
    files: tuple[Path, Path],
    tmp_path: Path,
    content: str,
    line_no: int,
    column: str | None,
    reason: str,
) -> None:
    import_interchange(*files)
    bad = gz(tmp_path / "bad.csv.gz", content)
    before = counts()

    with pytest.raises(ImportFormatError) as caught:
        import_interchange(bad, files[1])

    assert (caught.value.file, caught.value.line, caught.value.column) == (
        str(bad),
        line_no,
        column,
    )
    assert reason in caught.value.reason
    assert counts() == before


def test_unmapped_required_field_fails_before_writing(files: tuple[Path, Path]) -> None:
    name_field = field("name")
    unmapped = {**cs_settings.PRODUCT_FIELDS, "name": None}

    with (
        override_settings(CROSSSELL_PRODUCT_FIELDS=unmapped),
        pytest.raises(ImportConfigError, match=rf"required fields .*\b{name_field}\b"),
    ):
        import_interchange(*files)
    assert counts() == (1, 0)

    # Purchases alone create no product, so they do not need the name.
    for key in ("p1", "p2", "p3"):
        make_product(key, key.upper())
    with override_settings(CROSSSELL_PRODUCT_FIELDS=unmapped):
        report = import_interchange(purchases_path=files[1])
    assert report.purchases_inserted == 4


def test_key_must_be_a_unique_plain_field(files: tuple[Path, Path]) -> None:
    fields = cs_settings.PRODUCT_FIELDS
    with (
        override_settings(CROSSSELL_PRODUCT_FIELDS={**fields, "key": fields["name"]}),
        pytest.raises(ImportConfigError, match="must be unique"),
    ):
        import_interchange(*files)
    with (
        override_settings(CROSSSELL_PRODUCT_FIELDS={**fields, "category": "id__name"}),
        pytest.raises(ImportConfigError, match="not a plain field"),
    ):
        import_interchange(*files)
    assert counts() == (1, 0)


# --- bulk, and real data ----------------------------------------------------------------------


def test_writes_in_bulk(tmp_path: Path, django_assert_max_num_queries: Any) -> None:
    products = "product_id,name,category,price\n" + "".join(
        f"k{i},Product {i},,1\n" for i in range(50)
    )
    purchases = HEADER + "".join(f"o{i // 3},,k{i % 50},1,,\n" for i in range(6000))
    files = gz(tmp_path / "p.csv.gz", products), gz(tmp_path / "o.csv.gz", purchases)

    # A query per line would be 6,000; bulk writing needs a handful plus one per batch (SQLite's
    # batches are small: 999 parameters at most).
    with django_assert_max_num_queries(100):
        report = import_interchange(*files)

    assert (report.purchases_inserted, report.purchases_merged) == (6000, 0)
    assert counts() == (50, 6000)


@pytest.mark.shared_data
def test_groceries(shared_data: Path) -> None:
    import csv

    folder = shared_data / "groceries"
    with gzip.open(folder / "purchases.csv.gz", "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    pairs = {(r["order_id"], r["product_id"]) for r in rows}
    with gzip.open(folder / "products.csv.gz", "rt", encoding="utf-8", newline="") as f:
        n_products = sum(1 for _ in csv.DictReader(f))
    if not empty_price_allowed():
        # groceries has no prices, and this shop's price field has no default
        with pytest.raises(ImportFormatError, match="column 'price': empty"):
            import_interchange(folder / "products.csv.gz", folder / "purchases.csv.gz")
        assert counts() == (0, 0)
        return

    report = import_interchange(folder / "products.csv.gz", folder / "purchases.csv.gz")

    assert (report.products_created, report.purchase_lines) == (n_products, len(rows))
    assert report.purchases_inserted == len(pairs)
    assert report.purchases_merged == len(rows) - len(pairs)
    assert counts() == (n_products, len(pairs))
    again = import_interchange(purchases_path=folder / "purchases.csv.gz")
    assert (again.purchases_inserted, again.purchases_skipped) == (0, len(pairs))


# --- matching product_id against the primary key (--match pk) --------------------------------


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "orm"])
def test_match_pk_reads_product_ids_as_primary_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy: bool
) -> None:
    import crosssell.services.importing as importing

    monkeypatch.setattr(
        importing, "_use_copy", lambda: copy and importing.connection.vendor == "postgresql"
    )
    # A shop whose key field says nothing useful: the history names products by primary key.
    a, b = make_product("", "Kettle"), make_product("kettle-2", "Teapot")
    purchases = gz(
        tmp_path / "purchases.csv.gz",
        HEADER + f"o1,c1,{a.pk},1,30.00,2024-05-01T10:00:00Z\no1,c1,{b.pk},2,,\n",
    )
    with pytest.raises(ImportFormatError, match="unknown product"):
        import_interchange(purchases_path=purchases)  # by key: "1" and "2" are no keys
    assert Purchase.objects.count() == 0

    report = import_interchange(purchases_path=purchases, match="pk")

    assert report.purchases_inserted == 2
    got = {(p.product_id, p.quantity) for p in Purchase.objects.all()}
    assert got == {(a.pk, 1), (b.pk, 2)}
    assert line("o1", "").purchased_at == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_match_pk_refuses_a_products_file(files: tuple[Path, Path]) -> None:
    with pytest.raises(ImportConfigError, match="purchases file only"):
        import_interchange(*files, match="pk")
    assert counts() == (1, 0)


def test_command_match_option(tmp_path: Path) -> None:
    a = make_product("x1", "Kettle")
    purchases = gz(tmp_path / "p.csv.gz", HEADER + f"o9,,{a.pk},1,,\n")
    call_command("crosssell_import", "--purchases", str(purchases), "--match", "pk", verbosity=0)
    assert Purchase.objects.get(order_ref="o9").product_id == a.pk
    with pytest.raises(CommandError):
        call_command("crosssell_import", "--purchases", str(purchases), "--match", "id")
