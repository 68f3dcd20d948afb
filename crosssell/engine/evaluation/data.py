"""Reading the two-file interchange format (PROTOCOL.md) without pandas.

``products.csv.gz``: ``product_id,name,category,price``;
``purchases.csv.gz``: ``order_id,customer_id,product_id,quantity,unit_price,purchased_at``.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crosssell.engine.base import ItemContent

StrArray = npt.NDArray[np.str_]

PURCHASE_COLUMNS = ("order_id", "customer_id", "product_id")
PRODUCT_COLUMNS = ("product_id",)


@dataclass(frozen=True)
class Catalog:
    """The products file: one entry per product id (as a string)."""

    product_ids: list[str]
    names: list[str]
    categories: list[str]
    prices: npt.NDArray[np.float64]

    def content_for(self, product_ids: npt.ArrayLike) -> ItemContent:
        """``ItemContent`` aligned with ``product_ids`` (unknown products get empty content)."""
        pos = {p: i for i, p in enumerate(self.product_ids)}
        names: list[str] = []
        cats: list[str] = []
        prices = []
        for p in np.asarray(product_ids, dtype=str).tolist():
            i = pos.get(p)
            names.append(self.names[i] if i is not None else "")
            cats.append(self.categories[i] if i is not None else "")
            prices.append(self.prices[i] if i is not None else np.nan)
        return ItemContent(names, [""] * len(names), cats, np.asarray(prices, dtype=np.float64))


@dataclass(frozen=True)
class PurchaseLog:
    """The purchases file, one entry per line in file order (ids as strings)."""

    order_ids: StrArray
    customer_ids: StrArray
    product_ids: StrArray
    purchased_at: StrArray

    def __len__(self) -> int:
        return len(self.order_ids)


def _open_text(path: str | Path) -> io.TextIOBase:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", newline="")
    return open(p, encoding="utf-8", newline="")


def _header(reader: csv.DictReader[str], path: str | Path, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")


def read_purchases(path: str | Path) -> PurchaseLog:
    """Read ``purchases.csv.gz`` (or plain csv) into string arrays, in file order."""
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        _header(reader, path, PURCHASE_COLUMNS)
        fields = reader.fieldnames or []
        col = {name: i for i, name in enumerate(fields)}
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path}: no purchases")

    def column(name: str) -> StrArray:
        if name not in col:
            return np.full(len(rows), "", dtype=object).astype(str)
        i = col[name]
        return np.array([r[i] if i < len(r) else "" for r in rows], dtype=str)

    return PurchaseLog(
        column("order_id"), column("customer_id"), column("product_id"), column("purchased_at")
    )


def read_products(path: str | Path) -> Catalog:
    """Read ``products.csv.gz``; missing names/categories become ``""``, prices ``nan``."""
    ids: list[str] = []
    names: list[str] = []
    cats: list[str] = []
    prices: list[float] = []
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        _header(reader, path, PRODUCT_COLUMNS)
        for row in reader:
            ids.append(row["product_id"])
            names.append(row.get("name") or "")
            cats.append(row.get("category") or "")
            try:
                prices.append(float(row.get("price") or "nan"))
            except ValueError:
                prices.append(float("nan"))
    return Catalog(ids, names, cats, np.asarray(prices, dtype=np.float64))
