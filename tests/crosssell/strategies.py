"""Strategies for tests that need a rebuild to take a while (a worker is killed during it), or
to fail in one shard of a chord."""

from __future__ import annotations

import os
import time

import numpy as np
import numpy.typing as npt

from crosssell.engine.base import Interactions, TopK
from crosssell.engine.cooccurrence import CoCount

COCOUNT = "crosssell.engine.cooccurrence.CoCount"
SLOW = "tests.crosssell.strategies.SlowCoCount"
FAILS_ON_LAST = "tests.crosssell.strategies.FailsOnLastItem"


class SlowCoCount(CoCount):
    """Co-count that sleeps before ranking (``SLOW_STRATEGY_SECONDS``, default 4)."""

    name = "cocount"

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        time.sleep(float(os.environ.get("SLOW_STRATEGY_SECONDS", "4")))
        return super().similar_items(items, k)


class FailsOnLastItem(CoCount):
    """Co-count that raises when asked about the catalog's last item: in a chord, only the
    shard holding that item fails."""

    name = "cocount"

    def fit(self, data: Interactions) -> FailsOnLastItem:
        self.n_items = data.n_items
        super().fit(data)
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        if self.n_items - 1 in np.asarray(items):
            raise ValueError("this shard fails on purpose")
        return super().similar_items(items, k)
