"""The served-path evaluation (``benchmarks/served.py``, issue 16) on a small generated shop.

The benchmark imports the FBT-v1 training orders into the database, rebuilds, asks the widgets'
function every query and cart, and scores what it shows beside the engine. Without the privacy
threshold (``CROSSSELL_MIN_CUSTOMERS = 1``) and with prices in the products file, the shop serves
the engine's own lists: the two figures must agree.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from crosssell.engine.evaluation.cart import cart_split
from crosssell.engine.evaluation.data import read_products, read_purchases
from crosssell.engine.evaluation.fbt import filled_lists, popularity_order, score_lists
from crosssell.engine.evaluation.served import (
    answer_matrix,
    gap_percent,
    sample_carts,
    sample_queries,
    score_cart_answers,
    score_product_answers,
    with_threshold,
)
from crosssell.engine.evidence import MIN_CUSTOMERS_KEY
from crosssell.engine.registry import build_strategy
from crosssell.engine.synthetic import make_shop, write_interchange

ROOT = Path(__file__).resolve().parents[2]


def served_module() -> ModuleType:
    """``benchmarks/served.py`` (a script, not a package) loaded as a module."""
    name = "crosssell_bench_served"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "served.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated shop in the interchange format: 60 products, 1,200 timed orders, prices."""
    shop = make_shop(n_products=60, n_orders=1_200, n_categories=6, random_state=7)
    return write_interchange(shop, tmp_path_factory.mktemp("served"))


def test_samples_are_fixed_and_scored_by_the_protocols_code(dataset: tuple[Path, Path]) -> None:
    products, purchases = dataset
    split_c = cart_split(read_purchases(purchases), read_products(products))
    split = split_c.fbt
    n = len(split.query_items)
    sub = sample_queries(split, n // 3, seed=42)
    assert len(sub.query_items) == n // 3
    again = sample_queries(split, n // 3, seed=42)
    assert np.array_equal(sub.query_items, again.query_items)
    assert np.array_equal(sub.query_orders, again.query_orders)
    assert sample_queries(split, None) is split
    assert len(sample_carts(split_c, 5).carts) == 5

    # the engine's own lists, handed over as answers, score as the engine scores them
    est = build_strategy("blend").fit(split.train)
    uniq = np.unique(sub.query_items)
    lists = filled_lists(est, uniq, popularity_order(split.train))
    expected = score_lists(sub, lists, uniq)
    shown = {int(q): row.tolist() for q, row in zip(uniq, lists, strict=True)}
    got = score_product_answers(sub, shown)
    assert got == expected
    # a short list is padded with misses; an unknown product (-1) is never a hit
    assert answer_matrix([[3, 1], [-1]], 3).tolist() == [[3, 1, -1], [-1, -1, -1]]
    nothing = score_product_answers(sub, {int(q): [] for q in uniq})
    assert nothing["ndcg@10"] == 0.0 and nothing["hr@10"] == 0.0
    empty_carts = score_cart_answers(split_c, [[] for _ in split_c.carts])
    assert empty_carts["ndcg@10"] == 0.0
    with pytest.raises(ValueError, match="answers for"):
        score_cart_answers(split_c, [])

    private = with_threshold(split.train, 3)
    assert private.extra[MIN_CUSTOMERS_KEY] == 3 and MIN_CUSTOMERS_KEY not in split.train.extra
    assert gap_percent(0.2, 0.19) == pytest.approx(-5.0)


@pytest.mark.django_db
def test_served_equals_engine_without_the_privacy_threshold(
    dataset: tuple[Path, Path], settings: object
) -> None:
    settings.CROSSSELL_MIN_CUSTOMERS = 1  # type: ignore[attr-defined]
    products, purchases = dataset
    result = served_module().evaluate_served(products, purchases, progress=None)

    product, cart = result["product"], result["cart"]
    assert product["queries"] > 100 and cart["queries"] > 20
    assert result["imported"]["lines"] > 0
    assert not any("had no price" in note for note in result["notes"])
    engine, served = product["engine"]["ndcg@10"], product["served"]["ndcg@10"]
    assert engine > 0.1
    # the same lists, up to ties broken in another item order
    assert abs(product["gap_percent"]) < 0.5, (engine, served)
    assert product["short_lists"] == 0
    asked = product["first_ask_ms"]["n"] + product["cached_ask_ms"].get("n", 0)
    assert asked == product["queries"] and cart["ask_ms"]["n"] == cart["queries"]
    # the engine's cart row keeps the served privacy threshold's default (3): a looser bound
    assert abs(cart["gap_percent"]) < 5.0, (cart["engine"], cart["served"])
    steps = [s["step"] for s in product["steps"]]
    assert steps[0].startswith("engine") and steps[-1].startswith("served")
    assert any("privacy threshold" in s for s in steps)
    assert result["build"]["parameters"]["min_customers"] == 1

    table = served_module().markdown(result)
    assert "| product page (blend) |" in table and "served (recommend, limit 10)" in table
