"""Helpers of the ranking tests (``test_build_fast_paths``, ``test_build_evidence_counts``): a
strategy that answers with given lists, and the comparison of two sets of ranked rows.

Not a test module: test modules import their shared helpers from here, never from each other.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crosssell.engine.base import Interactions, ItemRecommender, TopK
from crosssell.engine.ranking import Rows


class Fixed(ItemRecommender):
    """Answers with a given TopK (rows aligned with item indices)."""

    name = "fixed"

    def __init__(self, top: TopK) -> None:
        self.top = top

    def fit(self, data: Interactions) -> Fixed:
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        q = np.asarray(items, dtype=np.int64)
        src = None if self.top.sources is None else self.top.sources[q]
        return TopK(self.top.indices[q], self.top.scores[q], src, list(self.top.source_names))


def assert_same_rows(got: Rows, want: Rows) -> None:
    """``got`` and ``want`` hold the same rows, in the same order, every column equal (the
    evidence columns with the same dtypes too)."""
    assert got.src.tolist() == want.src.tolist()
    assert got.dst.tolist() == want.dst.tolist()
    assert got.rank.tolist() == want.rank.tolist()
    assert got.score.tolist() == want.score.tolist()
    assert got.strategy == want.strategy
    assert got.evidence.keys() == want.evidence.keys()
    for name in got.evidence:
        assert got.evidence[name].dtype == want.evidence[name].dtype
        assert np.array_equal(got.evidence[name], want.evidence[name])
