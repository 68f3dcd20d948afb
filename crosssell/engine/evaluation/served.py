"""The engine's side of the served-path evaluation (``benchmarks/served.py``, issue 16).

The shop's widgets are asked every FBT-v1 query and every CART-v1 cart of a fixed sample; what
they show is scored here with the protocols' own code (:func:`~crosssell.engine.evaluation.fbt.
score_lists`, :func:`~crosssell.engine.evaluation.cart.score`), beside the engine's figures on
the same queries. Nothing here knows Django: the answers come in as item indices of the split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from crosssell.engine.base import IntArray, Interactions
from crosssell.engine.evaluation.cart import CartSplit
from crosssell.engine.evaluation.cart import score as cart_score
from crosssell.engine.evaluation.fbt import SEED, FBTSplit, score_lists
from crosssell.engine.evidence import MIN_CUSTOMERS_KEY

K = 10


def sample_indices(n: int, size: int | None, seed: int = SEED) -> IntArray:
    """``size`` of ``range(n)`` drawn without replacement by ``default_rng(seed)``, sorted; all
    of them when ``size`` is ``None`` or at least ``n``."""
    if size is None or size >= n:
        return np.arange(n, dtype=np.int64)
    pick = np.random.default_rng(seed).choice(n, size=size, replace=False)
    return np.sort(pick).astype(np.int64)


def sample_queries(split: FBTSplit, size: int | None, seed: int = SEED) -> FBTSplit:
    """The split with a fixed sample of its queries (:func:`sample_indices`); training and
    relevant sets unchanged, so every figure on it is an FBT-v1 figure on fewer queries."""
    keep = sample_indices(len(split.query_items), size, seed)
    if len(keep) == len(split.query_items):
        return split
    return dataclasses.replace(
        split,
        query_items=split.query_items[keep],
        query_orders=split.query_orders[keep],
        n_relevant=split.n_relevant[keep],
    )


def sample_carts(split: CartSplit, size: int | None, seed: int = SEED) -> CartSplit:
    """The CART-v1 split with a fixed sample of its carts (same rule as :func:`sample_queries`)."""
    keep = sample_indices(len(split.carts), size, seed).tolist()
    if len(keep) == len(split.carts):
        return split
    return CartSplit(split.fbt, [split.carts[i] for i in keep], [split.relevant[i] for i in keep])


def answer_matrix(answers: Sequence[Sequence[int]], k: int = K) -> npt.NDArray[np.int64]:
    """Answers as a ``len(answers) x k`` matrix: the first ``k`` of each, ``-1`` where a list
    is shorter (an empty slot is a miss, as the protocols score it)."""
    out = np.full((len(answers), k), -1, dtype=np.int64)
    for row, got in enumerate(answers):
        got = list(got)[:k]
        out[row, : len(got)] = got
    return out


def score_product_answers(
    split: FBTSplit, answers: Mapping[int, Sequence[int]], k: int = K
) -> dict[str, float]:
    """FBT-v1's HR@10, Recall@10 and NDCG@10 of the lists a widget showed.

    Parameters
    ----------
    split
        The (possibly sampled) FBT-v1 split.
    answers
        Per query item index, the item indices shown (best first; ``-1`` for a product the
        split does not know, which can never be relevant).
    """
    uniq = np.unique(split.query_items)
    lists = answer_matrix([answers[int(q)] for q in uniq.tolist()], k)
    return score_lists(split, lists, uniq)


def score_cart_answers(split: CartSplit, answers: Sequence[Sequence[int]]) -> dict[str, float]:
    """CART-v1's HR@10 and NDCG@10 of the lists a cart widget showed, one per cart in order."""
    if len(answers) != len(split.carts):
        raise ValueError(f"{len(answers)} answers for {len(split.carts)} carts")
    return cart_score(answer_matrix(answers), split)


def with_threshold(data: Interactions, min_customers: int) -> Interactions:
    """``data`` asking a strategy's fit for the shop's privacy threshold, as a build does
    (``extra["min_customers"]``): pairs bought together by fewer customers count as never."""
    return dataclasses.replace(data, extra={**data.extra, MIN_CUSTOMERS_KEY: int(min_customers)})


def with_split_training(split: CartSplit, data: Interactions) -> CartSplit:
    """The CART-v1 split with another training part (e.g. :func:`with_threshold`'s)."""
    return CartSplit(dataclasses.replace(split.fbt, train=data), split.carts, split.relevant)


def gap_percent(engine: float, served: float) -> float:
    """How far ``served`` is from ``engine``, in % of ``engine`` (negative: served is lower)."""
    return 100.0 * (served - engine) / engine if engine else float("nan")
