"""Strategies for tests that need a rebuild to take a while (a worker is killed during it)."""

from __future__ import annotations

import os
import time

import numpy.typing as npt

from crosssell.engine.base import TopK
from crosssell.engine.cooccurrence import CoCount

COCOUNT = "crosssell.engine.cooccurrence.CoCount"
SLOW = "tests.crosssell.strategies.SlowCoCount"


class SlowCoCount(CoCount):
    """Co-count that sleeps before ranking (``SLOW_STRATEGY_SECONDS``, default 4)."""

    name = "cocount"

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        time.sleep(float(os.environ.get("SLOW_STRATEGY_SECONDS", "4")))
        return super().similar_items(items, k)
