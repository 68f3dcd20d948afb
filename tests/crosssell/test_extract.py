"""Extraction: the PostgreSQL COPY path reads exactly what the ORM path reads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.db import connection

from crosssell.models import Build, Purchase
from crosssell.services import extract as ex
from crosssell.testing import make_product

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's"
)


@pytest.fixture
def lines() -> list[Any]:
    """Orders of known customers (some with several orders), guests, and awkward references."""
    products = [make_product(f"P{i}") for i in range(9)]
    refs = [
        ("o1", "alice", [0, 1, 2]),
        ("o2", "alice", [1, 3]),
        ("o3", "", [0, 1]),  # a guest
        ("o4", "", [0, 1]),  # another guest: another customer
        ("tab\there", "bob", [4]),
        ("ünï\\cödé", "bob", [5, 6, 7]),
        ("o7", "carol\nx", [8, 0]),
        ("o8", "42", [2]),
    ]
    rows = [
        Purchase(order_ref=o, customer_ref=c, product_id=products[i].pk)
        for o, c, items in refs
        for i in items
    ]
    Purchase.objects.bulk_create(rows)
    return products


def as_sets(lines: ex._Lines) -> tuple[Any, ...]:
    """Orders as (customer, item set), comparable whatever the numbering."""
    baskets: dict[int, set[int]] = {}
    for o, i in zip(lines.order.tolist(), lines.item.tolist(), strict=True):
        baskets.setdefault(o, set()).add(i)
    return (
        lines.n_orders,
        lines.n_customers,
        sorted((int(lines.order_customer[o]), sorted(items)) for o, items in baskets.items()),
    )


@postgres_only
def test_copy_path_reads_what_the_orm_reads(
    lines: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    product_ids, _ = ex._read_products(False)
    # several COPY statements, and a progress callback that uses the connection between them
    monkeypatch.setattr(ex, "STATEMENT_ROWS", 4)
    seen: list[float] = []

    def progress(stage: str, fraction: float, rows: int) -> None:
        Build.objects.count()
        seen.append(fraction)

    fast = ex._purchases_postgresql("default", product_ids, progress)
    slow = ex._purchases_orm(product_ids, None)
    assert len(seen) >= 3 and seen == sorted(seen)
    assert as_sets(fast) == as_sets(slow)
    # both number orders and customers by first appearance in the same (heap) order
    assert np.array_equal(fast.order, slow.order)
    assert np.array_equal(fast.item, slow.item)
    assert np.array_equal(fast.order_customer, slow.order_customer)
    assert fast.n_orders == 8 and fast.n_customers == 6  # alice, 2 guests, bob, carol, 42


@postgres_only
def test_extract_on_postgres_builds_the_same_matrix(lines: list[Any]) -> None:
    got = ex.extract(with_content=False)
    assert got.n_lines == Purchase.objects.count() == 16
    X = got.data.baskets
    assert X.shape == (8, 9) and X.nnz == 16 and set(X.data.tolist()) == {1.0}
    assert got.data.n_customers == 6


@postgres_only
def test_purchase_of_an_unknown_product_is_an_error(lines: list[Any]) -> None:
    product_ids, _ = ex._read_products(False)
    with pytest.raises(KeyError):
        ex._purchases_postgresql("default", product_ids[1:], None)
    # the connection is still usable afterwards
    assert Purchase.objects.count() == 16


def test_hashed_codes_tell_apart_values_whose_first_hashes_collide() -> None:
    h0 = np.array([5, 5, 7, 5, 7, 9], dtype=np.int64)
    h1 = np.array([1, 2, 3, 1, 3, 4], dtype=np.int64)  # (5, 1) and (5, 2) differ
    codes, first, n = ex.hashed_codes(h0, h1)
    assert n == 4
    assert codes.tolist() == [0, 1, 2, 0, 2, 3]  # numbered by first appearance
    assert first.tolist() == [0, 1, 2, 5]


def test_hashed_codes_without_collisions_match_unique() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 50, size=400)
    codes, first, n = ex.hashed_codes(values * 7919, values * 104729)
    assert n == len(np.unique(values))
    assert np.array_equal(values[first][codes], values)
    assert first.tolist() == sorted(first.tolist())


def test_item_lookup_dense_and_sparse_keys() -> None:
    for ids in (np.array([3, 4, 6, 7]), np.array([2, 10**9, 10**12])):
        lookup = ex.item_lookup(ids.astype(np.int64))
        probe = np.concatenate([ids, [0, 5, -1, 10**13]]).astype(np.int64)
        got = lookup(probe)
        assert got[: len(ids)].tolist() == list(range(len(ids)))
        assert got[len(ids) :].tolist() == [-1, -1, -1, -1]
