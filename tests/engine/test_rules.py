"""Association rules: the arules oracle on Groceries, mlxtend on random data, cart completion."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from crosssell.engine.base import Interactions
from crosssell.engine.evaluation.data import read_purchases
from crosssell.engine.rules import AssociationRules, frequent_itemsets
from tests.engine.conftest import random_interactions


def _groceries(root: Path) -> tuple[Interactions, list[str]]:
    log = read_purchases(root / "groceries" / "purchases.csv.gz")
    items, col = np.unique(log.product_ids, return_inverse=True)
    _, row = np.unique(log.order_ids, return_inverse=True)
    X = sp.csr_matrix((np.ones(len(row)), (row, col)), shape=(row.max() + 1, len(items)))
    return Interactions.from_baskets(X), [str(i) for i in items]


def _arules_side(text: str) -> frozenset[str]:
    return frozenset(text.strip("{}").split(","))


@pytest.mark.shared_data
def test_reproduces_arules_410_rules(shared_data: Path) -> None:
    data, names = _groceries(shared_data)
    assert data.n_orders == 9835 and data.n_items == 169
    model = AssociationRules(
        min_support=0.001, min_confidence=0.8, min_lift=0.0, max_len=10, min_count=1
    ).fit(data)
    rules = model.rules_
    ours = {
        (frozenset(names[j] for j in rules.lhs_items(r)), names[int(rules.rhs[r])]): (
            rules.support[r],
            rules.confidence[r],
            rules.lift[r],
            rules.coverage[r],
            rules.count[r],
        )
        for r in range(len(rules))
    }
    oracle = shared_data / "groceries" / "rules_supp0.001_conf0.8.csv"
    with open(oracle, newline="") as fh:
        ref = list(csv.DictReader(fh))
    assert len(ref) == 410 and len(ours) == 410
    for r in ref:
        key = (_arules_side(r["LHS"]), r["RHS"].strip("{}"))
        supp, conf, lift, cover, count = ours[key]
        assert abs(supp - float(r["support"])) < 1e-9
        assert abs(conf - float(r["confidence"])) < 1e-9
        assert abs(lift - float(r["lift"])) < 1e-9
        assert abs(cover - float(r["coverage"])) < 1e-9
        assert count == int(r["count"])


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("supp", "conf", "n_rules"), [(0.001, 0.5, 5668), (0.006, 0.25, 463), (0.01, 0.5, 15)]
)
def test_rule_counts_at_other_thresholds(
    shared_data: Path, supp: float, conf: float, n_rules: int
) -> None:
    """The counts arules_reference_output.txt reports (rules with a non-empty left side)."""
    data, _ = _groceries(shared_data)
    model = AssociationRules(
        min_support=supp, min_confidence=conf, min_lift=0.0, max_len=10, min_count=1
    ).fit(data)
    assert len(model.rules_) == n_rules


def test_frequent_itemsets_match_mlxtend_fpgrowth() -> None:
    pd = pytest.importorskip("pandas")
    mlx = pytest.importorskip("mlxtend.frequent_patterns")
    data = random_interactions(n_orders=400, n_items=15, density=0.25, seed=21)
    ours = frequent_itemsets(data.baskets, min_support=0.03, max_len=4)
    df = pd.DataFrame(data.baskets.toarray().astype(bool))
    ref = mlx.fpgrowth(df, min_support=0.03, use_colnames=False, max_len=4)
    want = {
        frozenset(int(i) for i in s): sup for s, sup in zip(ref.itemsets, ref.support, strict=True)
    }
    got = dict(zip((frozenset(s) for s in ours.itemsets), ours.support, strict=True))
    assert set(got) == set(want)
    for key, sup in want.items():
        assert abs(got[key] - sup) < 1e-12


def test_cart_completion_uses_rules_with_several_items_on_the_left() -> None:
    # 2 and 3 together predict 4; alone, neither does (confidence below the threshold)
    baskets = [[2, 3, 4]] * 6 + [[2, 0]] * 6 + [[3, 1]] * 6 + [[2], [3], [0, 1]]
    rows = np.repeat(np.arange(len(baskets)), [len(b) for b in baskets])
    X = sp.csr_matrix(
        (np.ones(len(rows)), (rows, np.concatenate(baskets))), shape=(len(baskets), 5)
    )
    model = AssociationRules(min_support=0.05, min_confidence=0.8, min_lift=1.0).fit(
        Interactions.from_baskets(X)
    )
    assert 4 not in model.similar_items([2], 3).row(0)
    top = model.recommend_basket([2, 3], 3)
    assert top.row(0) == [4] and top.scores[0, 0] == pytest.approx(6 / 6)
    with pytest.raises(ValueError):
        AssociationRules(max_len=1).fit(Interactions.from_baskets(X))
