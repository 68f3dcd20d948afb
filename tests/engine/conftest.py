"""Small interaction matrices with a known answer, shared by the engine tests."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemContent

NAMES = [
    "apple pie",
    "vanilla cream",
    "coffee beans",
    "coffee filter",
    "tooth brush",
    "tooth paste",
    "scented candle",
    "apple pie large",  # never sold: a cold product that looks like item 0
]
CATEGORIES = [
    "bakery > pies",
    "dairy > cream",
    "pantry > coffee",
    "kitchen > filters",
    "hygiene > teeth",
    "hygiene > teeth",
    "home > decor",
    "bakery > pies",
]


def known_answer_data(repeat: int = 1) -> Interactions:
    """Pairs (0, 1) x10, (2, 3) x8, (4, 5) x6 and item 6 alone x3; item 7 never sold.

    Customer 0 bought only item 0 (once); every other order has a customer of its own,
    except that customers 1-3 each bought the pair (0, 1) three times. ``repeat`` repeats the
    whole history (same customers), so that priors of a few dozen orders weigh what they
    would in a real shop.
    """
    baskets: list[list[int]] = []
    customers: list[int] = []
    baskets.append([0])
    customers.append(0)
    for n in range(9):
        baskets.append([0, 1])
        customers.append(1 + n % 3)
    baskets.append([0, 1, 6])
    customers.append(4)
    for _ in range(8):
        baskets.append([2, 3])
        customers.append(len(customers) + 10)
    for _ in range(6):
        baskets.append([4, 5])
        customers.append(len(customers) + 10)
    for _ in range(2):
        baskets.append([6])
        customers.append(len(customers) + 10)
    baskets = baskets * repeat
    customers = customers * repeat
    rows = np.repeat(np.arange(len(baskets)), [len(b) for b in baskets])
    cols = np.concatenate([np.asarray(b) for b in baskets])
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(baskets), len(NAMES)))
    _, cust = np.unique(np.asarray(customers), return_inverse=True)
    content = ItemContent(
        NAMES, [""] * len(NAMES), CATEGORIES, np.array([5.0, 2, 9, 3, 2, 3, 12, 8])
    )
    return Interactions.from_baskets(X, cust, content)


#: History repeats of the known-answer data in tests of registry defaults (tuned on real shops).
REPEAT = 30


@pytest.fixture
def known() -> Interactions:
    return known_answer_data(REPEAT)


def random_interactions(
    n_orders: int = 300, n_items: int = 40, density: float = 0.08, seed: int = 0
) -> Interactions:
    """Random binary baskets with random customers (for brute-force comparisons)."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_orders, n_items, density=density, random_state=rng, format="csr")
    customers = rng.integers(0, n_orders // 3, size=n_orders)
    return Interactions.from_baskets(X, customers)
