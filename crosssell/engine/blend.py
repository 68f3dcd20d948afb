"""The blend: several strategies, one ranked list per product and per cart.

Strategies are tried in order; each fills the slots still empty with its own best items not
yet listed (never the query item, never a duplicate), and every slot records which strategy
put it there. Popularity always comes last, so every list is full. The default is co-purchase
counts shrunk toward the look-alikes' companions (which also serves products with no sales),
then bestsellers as the floor.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from crosssell.engine.base import Interactions, ItemRecommender, TopK
from crosssell.engine.popularity import Popularity

StepSpec = str | ItemRecommender | tuple[str, dict[str, Any]]

DEFAULT_STEPS: tuple[str, ...] = ("cocount_content", "popularity")


class Blend(ItemRecommender):
    """Fill each list from several strategies in turn, recording each slot's source.

    Parameters
    ----------
    steps
        Strategies in order of preference: registry names, ``(name, params)`` pairs, dotted
        paths, or instances (fitted in place by ``fit``, as a scikit-learn ``Pipeline`` does).
    limits
        Optional maximum number of slots per step (``None``: no limit), aligned with ``steps``.
    """

    name = "blend"

    def __init__(
        self,
        steps: Sequence[StepSpec] = DEFAULT_STEPS,
        limits: Sequence[int | None] | None = None,
    ) -> None:
        self.steps = steps
        self.limits = limits

    def _build(self) -> list[ItemRecommender]:
        from crosssell.engine.registry import build_strategy

        built: list[ItemRecommender] = []
        for spec in self.steps:
            if isinstance(spec, ItemRecommender):
                est = spec  # fitted in place, as a scikit-learn Pipeline fits its steps
            elif isinstance(spec, tuple):
                est = build_strategy(spec[0], **spec[1])
            else:
                est = build_strategy(spec)
            if not isinstance(est, ItemRecommender):
                raise TypeError(f"blend step {spec!r} is not an item recommender")
            built.append(est)
        # the floor: every list full, whatever the steps could say
        built.append(Popularity(include_unsold=True))
        return built

    def fit(self, data: Interactions) -> Self:
        if self.limits is not None and len(self.limits) != len(self.steps):
            raise ValueError("limits must have one entry per step")
        self.estimators_: list[ItemRecommender] = [est.fit(data) for est in self._build()]
        self.source_names_: list[str] = [est.name for est in self.estimators_]
        # The threshold below which no step read a pair (bestsellers read none): the blend is
        # as private as its least private step.
        self.private_below_: int = min(
            (
                int(getattr(est, "private_below_", 0))
                for est in self.estimators_
                if not isinstance(est, Popularity)
            ),
            default=sys.maxsize,
        )
        return self

    def _limit(self, step: int) -> int | None:
        if self.limits is None or step >= len(self.limits):
            return None
        return self.limits[step]

    def _merge(self, parts: list[TopK], queries: list[set[int]], k: int) -> TopK:
        n = len(queries)
        out_i = np.full((n, k), -1, dtype=np.int64)
        out_s = np.zeros((n, k), dtype=np.float32)
        out_src = np.full((n, k), -1, dtype=np.int8)
        for r in range(n):
            seen = set(queries[r])
            pos = 0
            for step, part in enumerate(parts):
                if pos >= k:
                    break
                cap = self._limit(step)
                taken = 0
                for j, s in zip(part.indices[r].tolist(), part.scores[r].tolist(), strict=True):
                    if pos >= k or (cap is not None and taken >= cap):
                        break
                    if j < 0 or j in seen:
                        continue
                    seen.add(j)
                    out_i[r, pos], out_s[r, pos], out_src[r, pos] = j, s, step
                    pos += 1
                    taken += 1
        return TopK(out_i, out_s, out_src, list(self.source_names_))

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        q = np.asarray(items, dtype=np.int64)
        # the floor is asked for more than k: the first k bestsellers may all be listed already
        parts = [est.similar_items(q, k) for est in self.estimators_[:-1]]
        parts.append(self.estimators_[-1].similar_items(q, 2 * k + 1))
        return self._merge(parts, [{int(i)} for i in q.tolist()], k)

    def recommend_basket(self, basket: npt.ArrayLike, k: int) -> TopK:
        items = np.unique(np.asarray(basket, dtype=np.int64))
        parts = [est.recommend_basket(items, k) for est in self.estimators_[:-1]]
        parts.append(self.estimators_[-1].recommend_basket(items, 2 * k + len(items)))
        return self._merge(parts, [{int(i) for i in items.tolist()}], k)
