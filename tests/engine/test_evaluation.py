"""FBT-v1 and PERSONAL-MS: metrics on hand-made cases, splits, and the peers' published rows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from crosssell.engine.cooccurrence import CoCount
from crosssell.engine.evaluation import metrics
from crosssell.engine.evaluation.data import PurchaseLog, read_products, read_purchases
from crosssell.engine.evaluation.fbt import evaluate_fbt, fbt_split, training_log
from crosssell.engine.evaluation.peers import PeerCoCount, PeerCosine, PeerPopularity
from crosssell.engine.evaluation.personal import (
    evaluate_personal,
    personal_split,
    stratified_train_mask,
)
from crosssell.engine.evaluation.runner import markdown_table, run_protocol, to_json
from crosssell.engine.popularity import Popularity
from crosssell.engine.synthetic import make_shop, write_interchange
from crosssell.engine.user_knn import EASE, UserKNN

L2 = math.log2


def test_ndcg_recall_hit_rate_on_hand_made_cases() -> None:
    hits = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 0]], dtype=bool)
    n_rel = np.array([1, 1, 2, 5])
    np.testing.assert_allclose(
        metrics.ndcg(hits, n_rel),
        [1.0, 1 / L2(3), (1 / L2(3) + 1 / L2(4)) / (1 + 1 / L2(3)), 0.0],
    )
    np.testing.assert_allclose(metrics.hit_rate(hits), [1, 1, 1, 0])
    # FBT recall caps the denominator at k (3 here); PERSONAL-MS recall does not
    np.testing.assert_allclose(metrics.recall_capped(hits, np.array([1, 1, 2, 5])), [1, 1, 1, 0])
    np.testing.assert_allclose(metrics.recall(hits, np.array([1, 1, 4, 5])), [1, 1, 0.5, 0])
    np.testing.assert_allclose(metrics.precision(hits), [1 / 3, 1 / 3, 2 / 3, 0])


def test_average_precision_is_recommenders_map() -> None:
    hits = np.array([[1, 0, 1, 0]], dtype=bool)
    # hits at ranks 1 and 3: (1/1 + 2/3) / |relevant|
    np.testing.assert_allclose(metrics.average_precision(hits, np.array([4])), [(1 + 2 / 3) / 4])


def _tiny_log() -> PurchaseLog:
    # the test order comes first in the file but last in time: the split is temporal
    rows = [
        ("o5", "c9", "A", "2024-01-05T00:00:00Z"),
        ("o5", "c9", "B", "2024-01-05T00:00:00Z"),
        ("o5", "c9", "Z", "2024-01-05T00:00:00Z"),  # never in training: relevant, unreachable
        ("o1", "c1", "A", "2024-01-01T00:00:00Z"),
        ("o1", "c1", "B", "2024-01-01T00:00:00Z"),
        ("o2", "c2", "A", "2024-01-02T00:00:00Z"),
        ("o2", "c2", "C", "2024-01-02T00:00:00Z"),
        ("o3", "", "C", "2024-01-03T00:00:00Z"),
        ("o3", "", "D", "2024-01-03T00:00:00Z"),
        ("o4", "c1", "C", "2024-01-04T00:00:00Z"),
        ("o4", "c1", "C", "2024-01-04T00:00:00Z"),  # duplicate line: one basket item
    ]
    cols = list(zip(*rows, strict=True))
    return PurchaseLog(*(np.array(c, dtype=str) for c in cols))


def test_fbt_split_and_scores_by_hand() -> None:
    split = fbt_split(_tiny_log())
    assert split.items == ["A", "B", "C", "D"]
    assert split.train.n_orders == 4 and split.train.baskets.nnz == 7
    # customers: c1 (two orders), c2 and one guest
    assert split.train.n_customers == 3
    assert sorted(split.query_items.tolist()) == [0, 1]
    assert split.n_relevant.tolist() == [2, 2]
    pop = evaluate_fbt(Popularity(), split)
    # A gets [C, B, D]: B at rank 2; B gets [C, A, D]: A at rank 2; ideal over 2 positions
    want = (1 / L2(3)) / (1 + 1 / L2(3))
    assert pop["ndcg@10"] == pytest.approx(want)
    assert pop["hr@10"] == 1.0 and pop["recall@10"] == pytest.approx(0.5)
    co = evaluate_fbt(CoCount(), split)
    assert co["ndcg@10"] == pytest.approx(1 / (1 + 1 / L2(3)))
    # the validation log is the training orders only
    assert sorted(set(training_log(_tiny_log()).order_ids.tolist())) == ["o1", "o2", "o3", "o4"]


def test_cold_slice_hides_a_tenth_of_the_products() -> None:
    shop = make_shop(n_products=200, n_orders=3000, random_state=3)
    X = shop.data.baskets
    orders, items = X.nonzero()
    log = PurchaseLog(
        np.array([f"o{o:05d}" for o in orders]),
        np.array([""] * len(orders)),
        np.array([f"p{i:03d}" for i in items]),
        np.array([""] * len(orders)),
    )
    warm = fbt_split(log)
    cold = fbt_split(log, cold=True)
    assert len(cold.hidden) == len(warm.items) // 10
    assert cold.items == warm.items
    assert cold.train.baskets[:, cold.hidden].nnz == 0
    assert set(cold.query_items.tolist()) <= set(cold.hidden.tolist())
    assert len(cold.query_items) > 0


def test_stratified_split_rounds_half_to_even() -> None:
    # counts 2 (1.5 -> 2), 6 (4.5 -> 4), 3 (2.25 -> 2)
    prods = np.array(["a"] * 2 + ["b"] * 6 + ["c"] * 3)
    mask = stratified_train_mask(prods)
    assert [int(mask[prods == p].sum()) for p in "abc"] == [2, 4, 2]


def test_run_protocol_on_generated_data(tmp_path: Path) -> None:
    shop = make_shop(n_products=500, n_orders=10_000, random_state=4)
    products, purchases = write_interchange(shop, tmp_path)
    report = run_protocol(
        products, purchases, "fbt-v1", strategies=["blend", "popularity"], progress=None
    )
    rows = {(r["strategy"], r["slice"]): r for r in report["results"]}
    assert {("blend", "all"), ("blend", "cold"), ("peer-cocount", "all")} <= set(rows)
    assert rows[("blend", "all")]["default"] and rows[("peer-cocount", "all")]["peer"]
    # the generated shop has co-purchase structure: the blend beats popularity
    assert rows[("blend", "all")]["ndcg@10"] > rows[("popularity", "all")]["ndcg@10"]
    # and it learned from content what goes with a product nobody bought yet
    assert rows[("blend", "cold")]["ndcg@10"] > rows[("popularity", "cold")]["ndcg@10"]
    assert "| **blend** (default) | all |" in markdown_table(report)
    assert '"protocol": "fbt-v1"' in to_json(report)


@pytest.mark.shared_data
def test_fbt_peers_reproduce_peer_eval_on_groceries(shared_data: Path) -> None:
    root = shared_data / "groceries"
    split = fbt_split(
        read_purchases(root / "purchases.csv.gz"), read_products(root / "products.csv.gz")
    )
    assert len(split.query_items) == 8198
    got = {
        p.name: round(evaluate_fbt(p, split)["ndcg@10"], 4)
        for p in (PeerPopularity(), PeerCoCount(), PeerCosine())
    }
    assert got == {"popularity": 0.3265, "cocount": 0.3317, "cosine": 0.2978}
    cold = fbt_split(read_purchases(root / "purchases.csv.gz"), cold=True)
    assert len(cold.query_items) == 723
    assert round(evaluate_fbt(PeerPopularity(), cold)["ndcg@10"], 4) == 0.3315


@pytest.mark.shared_data
def test_personal_ms_split_and_targets(shared_data: Path) -> None:
    split = personal_split(read_purchases(shared_data / "movielens-100k" / "purchases.csv.gz"))
    assert split.train.baskets.nnz == 75_066 and split.test.nnz == 24_934
    user = evaluate_personal(UserKNN(neighbours=100), split)
    assert user["precision@10"] >= 0.3406  # SAR's row
    ease = evaluate_personal(EASE(), split)
    assert ease["precision@10"] >= 0.4082 and ease["ndcg@10"] >= 0.4687  # BiVAE's row
