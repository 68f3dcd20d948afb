"""Malformed interchange files for the importer, shared by ``test_import_fuzz.py`` and
``benchmarks/fuzz_import.py``.

The property: :func:`crosssell.services.importing.import_interchange` either imports (and its
report agrees with what reached the database) or refuses with ``ImportFormatError`` /
``ImportConfigError`` and leaves the database exactly as it was. Any other exception is a crash.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction
from hypothesis import strategies as st

from crosssell.models import Purchase, get_product_model, product_field
from crosssell.services.importing import (
    MAX_LINE_BYTES,
    PRODUCT_COLUMNS,
    PURCHASE_COLUMNS,
    ImportConfigError,
    ImportFormatError,
    import_interchange,
)
from crosssell.testing import make_product

#: Products already in the database before every example (purchases may refer to them).
BASE_KEYS = ("p1", "p2", "p3")
#: Keys a generated products file uses (some new, some the database's).
KEYS = (*BASE_KEYS, "n1", "n2", "n3 ", "Ü4")

# Values a column is likely to get wrong, and ones it should accept.
NASTY = [
    "", " ", "0", "-1", "+1", "1.5", "1e3", "NaN", "inf", "-0", "1,5", "\u0663", "\uff12", "\u00b2",
    "0x1F",
    "9" * 30, "99999999.999", "12345678901.00", ".5", "5.", ".", "-", "2147483648",
    "2024-13-45", "2024-02-30T25:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-14:00",
    "2024-03-01T10:00:00+99:00", "2024-03-01 10:00", "20240301", "yesterday",
    '"', '""', "a,b", "a\nb", "a\rb", "x\x00y", "\ufeff", "\u2028", "\U0001f600",
    "'; DROP TABLE x; --",
    "x" * 65, "y" * 201, "z" * 70_000,
]  # fmt: skip
GOOD = {
    "product_id": st.sampled_from(BASE_KEYS * 3 + KEYS),
    "name": st.sampled_from(["Beans", "Mug, large", 'Cup "XL"', "Filter"]),
    "category": st.sampled_from(["", "Coffee", "Coffee > Beans"]),
    "price": st.sampled_from(["", "0", "12.50", "7", "99999999.99"]),
    "order_id": st.sampled_from(["o1", "o2", "o3", "A-17"]),
    "customer_id": st.sampled_from(["", "c1", "c2"]),
    "quantity": st.sampled_from(["1", "2", "10"]),
    "unit_price": st.sampled_from(["", "3.20", "10"]),
    "purchased_at": st.sampled_from(
        ["", "2024-03-01T10:00:00Z", "2024-03-01 09:30:00", "2024-03-01T10:00:00+02:00"]
    ),
}


def _cell(column: str, bad: bool) -> st.SearchStrategy[str]:
    good = GOOD.get(column, st.just("x"))
    return st.one_of(st.sampled_from(NASTY), st.text(max_size=12)) if bad else good


@st.composite
def _csv_text(draw: st.DrawFn, columns: tuple[str, ...]) -> bytes:
    """A CSV file: a header (maybe permuted, short, with extras or duplicates) and lines (maybe
    of the wrong width, mixed good and bad), then maybe broken at the byte level."""
    header = list(columns)
    shape = draw(
        st.sampled_from(
            ["same"] * 6 + ["permuted"] * 2 + ["missing", "extra", "duplicated", "junk"]
        )
    )
    if shape == "permuted":
        header = draw(st.permutations(header))
    elif shape == "missing":
        header.remove(draw(st.sampled_from(header)))
    elif shape == "extra":
        header.insert(draw(st.integers(0, len(header))), draw(st.sampled_from(["note", ""])))
    elif shape == "duplicated":
        header.append(draw(st.sampled_from(header)))
    elif shape == "junk":
        header = draw(st.lists(st.text(max_size=10), max_size=4))
    rows: list[list[str]] = []
    widths = draw(st.sampled_from(["ok"] * 6 + ["mixed"]))
    for _ in range(draw(st.integers(0, 8))):
        # Mostly good lines, some with one or more bad cells: mixed valid and invalid lines.
        bad = set(draw(st.lists(st.integers(0, 9), max_size=2))) if draw(st.booleans()) else set()
        row = [draw(_cell(c, i in bad)) for i, c in enumerate(header)]
        if columns == PRODUCT_COLUMNS and "product_id" in header and not bad:
            # A products file names each product once (a repeated key is its own refusal).
            row[header.index("product_id")] = KEYS[len(rows) % len(KEYS)]
        width = draw(st.sampled_from(["ok", "short", "long"])) if widths == "mixed" else "ok"
        if width == "short" and row:
            row.pop()
        elif width == "long":
            row.append(draw(_cell("note", False)))
        rows.append(row)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    quoted = draw(st.sampled_from([True] * 4 + [False]))
    if draw(st.booleans()):
        out.write("\ufeff")
    for row in [header, *rows]:
        if quoted:
            writer.writerow(row)
        else:  # no quoting at all: commas and quotes inside fields break the line
            out.write(",".join(row) + "\n")
    data = out.getvalue().encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 8 + ["latin1", "nul", "cut", "blank"]))
    if damage == "latin1" and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xe9\xff" + data[at:]
    elif damage == "nul" and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\x00" + data[at:]
    elif damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "blank":
        data += b"\n\n"
    return data


@st.composite
def _container(draw: st.DrawFn, columns: tuple[str, ...]) -> bytes:
    """The file's bytes: gzip of a CSV (maybe truncated), or not gzip at all."""
    kind = draw(
        st.sampled_from(["gzip"] * 12 + ["truncated", "raw", "random", "empty", "gzip-random",
                                         "long-line"])
    )  # fmt: skip
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "empty":
        return b""
    if kind == "gzip-random":
        return gzip.compress(draw(st.binary(max_size=200)))
    if kind == "long-line":
        body = ",".join(columns) + "\n" + "q" * (MAX_LINE_BYTES + draw(st.integers(1, 10))) + "\n"
        return gzip.compress(body.encode())
    text = draw(_csv_text(columns))
    if kind == "raw":
        return text
    packed = gzip.compress(text)
    if kind == "truncated":
        return packed[: draw(st.integers(0, max(len(packed) - 1, 0)))]
    return packed


@dataclass(frozen=True)
class Case:
    """A products file, a purchases file, or both (``None``: not given)."""

    products: bytes | None
    purchases: bytes | None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    which = draw(st.sampled_from(["both", "both", "products", "purchases"]))
    products = draw(_container(PRODUCT_COLUMNS)) if which != "purchases" else None
    purchases = draw(_container(PURCHASE_COLUMNS)) if which != "products" else None
    return Case(products, purchases)


# --- the database before and after ------------------------------------------------------------


def seed_base() -> None:
    """The products and purchases every example starts from."""
    made = [make_product(f"Base {key}", key=key, price="5.00") for key in BASE_KEYS]
    Purchase.objects.bulk_create(
        [
            Purchase(order_ref="base1", customer_ref="c0", product_id=p.pk, quantity=1)
            for p in made[:2]
        ]
    )


def snapshot() -> tuple[int, str, int, str]:
    """Product and purchase counts, and a checksum of every row of both tables."""
    model = get_product_model()
    fields = [product_field(r) for r in ("key", "name", "category", "price")]
    product_rows = list(
        model._base_manager.order_by("pk").values_list("pk", *[f for f in fields if f])
    )
    purchase_rows = list(
        Purchase.objects.order_by("pk").values_list(
            "pk", "order_ref", "customer_ref", "product_id", "quantity", "unit_price",
            "purchased_at",
        )
    )  # fmt: skip

    def digest(rows: list[Any]) -> str:
        return hashlib.sha256(repr(rows).encode()).hexdigest()

    return len(product_rows), digest(product_rows), len(purchase_rows), digest(purchase_rows)


class Tally(Counter[str]):
    """Outcomes: ``imported``, ``refused``, and the refusal reasons by kind."""


def check(case: Case, tally: Tally | None = None) -> str:
    """Import ``case`` inside a savepoint that is rolled back afterwards; returns the outcome.

    Raises ``AssertionError`` when a refused file changed the database or a report disagrees
    with the database; any exception other than the two import errors propagates (a crash).
    """
    with tempfile.TemporaryDirectory(prefix="fuzz-import-") as tmp:
        paths: list[Path | None] = []
        for name, data in (("products", case.products), ("purchases", case.purchases)):
            if data is None:
                paths.append(None)
                continue
            path = Path(tmp) / f"{name}.csv.gz"
            path.write_bytes(data)
            paths.append(path)
        with transaction.atomic():
            before = snapshot()
            try:
                report = import_interchange(paths[0], paths[1])
            except (ImportFormatError, ImportConfigError) as exc:
                after = snapshot()
                assert after == before, f"refused ({exc}) but the database changed"
                outcome = "refused"
                if tally is not None:
                    tally[f"refused: {_kind(exc)}"] += 1
            else:
                after = snapshot()
                assert after[0] - before[0] == report.products_created, report
                assert after[2] - before[2] == report.purchases_inserted, report
                assert report.purchase_lines == (
                    report.purchases_inserted + report.purchases_merged + report.purchases_skipped
                ), report
                outcome = "imported"
            transaction.set_rollback(True)  # every example starts from the same database
    if tally is not None:
        tally[outcome] += 1
    return outcome


def _kind(exc: Exception) -> str:
    """The reason of a refusal without its specifics (line numbers, values)."""
    if isinstance(exc, ImportFormatError):
        reason = re.sub(r"[0-9][0-9,]*", "N", re.sub(r"(?<= )'[^']*'", "'...'", exc.reason))
        for stop in (":", " (", ";", "(s) "):
            reason = reason.split(stop)[0]
        return reason[:60]
    return type(exc).__name__
