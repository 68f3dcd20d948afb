"""The build's vectorised ranking and its COPY write give exactly what the plain versions give."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from crosssell.engine.base import Interactions, ItemRecommender, TopK
from crosssell.engine.popularity import Popularity
from crosssell.engine.ranking import Rows, compute_rows, pair_evidence
from crosssell.models import Build, Recommendation
from crosssell.services import rows_writer
from crosssell.services.extract import Extracted
from crosssell.testing import make_product
from tests.crosssell.ranking_helpers import Fixed, assert_same_rows

FBT = Recommendation.Kind.BOUGHT_TOGETHER


def reference_rows(
    data: Interactions,
    model: ItemRecommender,
    k: int,
    min_customers: int,
    items: npt.NDArray[np.int64],
    excluded: Any,
) -> Rows:
    """The per-item loop compute_rows replaced (the specification)."""
    wide = model.similar_items(items, k + 8)
    names = wide.source_names or [getattr(model, "name", "strategy")]
    pop_head = Popularity().fit(data).order_[: 4 * k + 8]
    src_l, dst_l, score_l, strat_l = [], [], [], []
    for pos_q, i in enumerate(items.tolist()):
        cand = [
            (
                int(j),
                float(s),
                names[int(wide.sources[pos_q, p])] if wide.sources is not None else names[0],
            )
            for p, (j, s) in enumerate(zip(wide.indices[pos_q], wide.scores[pos_q], strict=True))
            if j >= 0 and j != i
        ]
        # The strategy's pairs below the privacy threshold go before the bestsellers fill in.
        if cand:
            people = pair_evidence(
                data, np.full(len(cand), i, dtype=np.int64), np.asarray([c[0] for c in cand])
            )["customers"]
            cand = [c for c, n in zip(cand, people, strict=True) if not 1 <= n < min_customers]
        fill = [(int(j), 0.0, "popularity") for j in pop_head if j != i]
        chosen: list[tuple[int, float, str]] = []
        seen = {i}
        for j, s, name in cand + fill:
            if j in seen:
                continue
            seen.add(j)
            chosen.append((j, s, name))
            if len(chosen) == k + 8:
                break
        for j, s, name in chosen:
            src_l.append(i)
            dst_l.append(j)
            score_l.append(s)
            strat_l.append(name)
    src = np.asarray(src_l, dtype=np.int64)
    dst = np.asarray(dst_l, dtype=np.int64)
    evidence = pair_evidence(data, src, dst)
    # A bestseller's pair below the threshold stays, with the evidence of a pair never bought.
    below = (evidence["customers"] >= 1) & (evidence["customers"] < min_customers)
    for values in evidence.values():
        values[below] = 0
    blocked = np.zeros(len(src), dtype=bool)
    if excluded is not None:
        blocked |= excluded(src, dst)
    keep = ~blocked
    src, dst = src[keep], dst[keep]
    score = np.asarray(score_l, dtype=np.float32)[keep]
    strategy = [s for s, kept in zip(strat_l, keep, strict=True) if kept]
    evidence = {name: values[keep] for name, values in evidence.items()}
    starts = np.r_[0, np.flatnonzero(np.diff(src)) + 1] if len(src) else np.zeros(0, dtype=int)
    rank = np.arange(len(src)) - np.repeat(starts, np.diff(np.r_[starts, len(src)]))
    cut = rank < k
    return Rows(
        src[cut],
        dst[cut],
        rank[cut],
        score[cut],
        [s for s, c in zip(strategy, cut, strict=True) if c],
        {name: values[cut] for name, values in evidence.items()},
    )


@st.composite
def cases(draw: Any) -> tuple[Interactions, Fixed, int, int, npt.NDArray[np.int64], bool]:
    n_items = draw(st.integers(2, 9))
    n_orders = draw(st.integers(1, 25))
    seed = draw(st.integers(0, 10**6))
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.random((n_orders, n_items)) < draw(st.floats(0.05, 0.7)))
    customers = rng.integers(0, max(1, n_orders // 2), size=n_orders)
    data = Interactions.from_baskets(X, customers)
    k = draw(st.integers(1, 4))
    width = k + 8
    # candidates: padding, the item itself and repeats included on purpose
    indices = rng.integers(-1, n_items, size=(n_items, width)).astype(np.int64)
    scores = rng.random((n_items, width)).astype(np.float32)
    blended = draw(st.booleans())
    sources = rng.integers(0, 3, size=(n_items, width)).astype(np.int8) if blended else None
    names = ["a", "b", "c"] if blended else []
    model = Fixed(TopK(indices, scores, sources, names))
    items = np.asarray(
        draw(st.lists(st.integers(0, n_items - 1), min_size=0, max_size=n_items, unique=True)),
        dtype=np.int64,
    )
    return data, model, k, draw(st.integers(1, 3)), items, draw(st.booleans())


def exclude_some(src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    return np.asarray((src + 2 * dst) % 5 == 0)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_compute_rows_equals_the_per_item_loop(case: Any) -> None:
    data, model, k, min_customers, items, with_exclusions = case
    excluded = exclude_some if with_exclusions else None
    got = compute_rows(data, model, k, min_customers, items=items, excluded=excluded)
    assert_same_rows(got, reference_rows(data, model, k, min_customers, items, excluded))


def test_compute_rows_rejects_an_item_that_does_not_exist() -> None:
    data = Interactions.from_baskets(sp.csr_matrix(np.eye(3)))
    top = TopK(np.array([[1, 7], [0, 2], [0, 1]]), np.ones((3, 2), dtype=np.float32))
    with pytest.raises(IndexError):
        compute_rows(data, Fixed(top), 2, 1)


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
def test_copy_writes_exactly_what_bulk_create_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    products = [make_product(f"P{i}") for i in range(4)]
    pids = np.asarray(sorted(p.pk for p in products), dtype=np.int64)
    ex = Extracted(Interactions.from_baskets(sp.csr_matrix((1, 4))), pids, 0)
    rows = Rows(
        src=np.array([0, 0, 0, 1, 2, 3], dtype=np.int64),
        dst=np.array([1, 2, 3, 0, 0, 2], dtype=np.int64),
        rank=np.array([0, 1, 2, 0, 0, 0], dtype=np.int64),
        score=np.array([1 / 3, 1e-7, 123456.789, 0.0, -2.5, 7.0], dtype=np.float32),
        strategy=["co\tcount", "back\\slash", "100% sure", "popularity", "x\ny", "é"],
        evidence={
            "co_count": np.array([5, 0, 2**40, 1, 2, 3], dtype=np.int64),
            "confidence": np.array([1 / 3, 0.1234565, 2 / 3, 0.0, 1.0, 1e-9]),
            "lift": np.array([1e6 / 7, 0.5, 3.0, 0.0, 10.25, 2.0]),
            "customers": np.array([5, 0, 3, 1, 2, 3], dtype=np.int64),
        },
    )
    fast, plain = Build.objects.create(), Build.objects.create()
    # one COPY per two rows, and a progress callback that queries between them
    monkeypatch.setattr(rows_writer, "COPY_BATCH", 2)
    reported: list[int] = []

    def report(stage: str, fraction: float, n: int) -> None:
        Build.objects.count()
        reported.append(n)

    assert rows_writer._copy_rows("default", fast, ex, rows, FBT, report) == 6
    assert reported == [2, 4, 6]
    assert rows_writer._bulk_create_rows("default", plain, ex, rows, FBT, lambda *a: None) == 6

    def stored(build: Build) -> list[tuple[Any, ...]]:
        return list(
            Recommendation.objects.filter(build=build)
            .order_by("source_id", "rank")
            .values_list(
                "source_id", "target_id", "kind", "rank", "score", "strategy", "evidence", "status"
            )
        )

    assert stored(fast) == stored(plain)
    assert stored(fast)[0][5] == "co\tcount" and stored(fast)[0][6]["confidence"] == 0.333333
    assert not Recommendation.objects.filter(build=fast, created_at__isnull=True).exists()
