"""The neural strategy on a small generated shop whose complements are known by design."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemContent

pytestmark = pytest.mark.deep
pytest.importorskip("tensorflow")

from crosssell.engine.neural import (  # noqa: E402
    ArtifactMismatchError,
    NeuralRecommender,
)

# 5 categories of 8 products: cameras go with memory cards and bags, teas with mugs; the lamps
# sell alone. The last camera never sells (a new product: content only).
CATEGORIES = [
    ("Photo > Cameras", "Camera"),
    ("Photo > Memory cards", "Memory card"),
    ("Photo > Bags", "Camera bag"),
    ("Kitchen > Tea", "Tea"),
    ("Kitchen > Mugs", "Mug"),
]
PER_CATEGORY = 8
CAMERAS, CARDS, BAGS, TEAS, MUGS = (
    list(range(c * PER_CATEGORY, (c + 1) * PER_CATEGORY)) for c in range(5)
)
COLD_CAMERA = CAMERAS[-1]
N_ITEMS = 5 * PER_CATEGORY
PARAMS: dict[str, Any] = {
    "embedding_dim": 16,
    "hidden_units": 32,
    "min_steps": 150,
    "max_steps": 150,
    "batch_size": 256,
    "learning_rate": 0.01,
    "random_state": 7,
}


def make_shop(n_orders: int = 3000, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    # Zipf-like popularity inside each category, so that popularity alone is a real baseline.
    w = 1.0 / np.arange(1, PER_CATEGORY + 1)
    w /= w.sum()
    camera_w = w.copy()
    camera_w[-1] = 0.0
    camera_w /= camera_w.sum()

    def pick(group: list[int], weights: np.ndarray = w) -> int:
        return int(group[rng.choice(PER_CATEGORY, p=weights)])

    rows: list[int] = []
    cols: list[int] = []
    for o in range(n_orders):
        r = rng.random()
        if r < 0.45:
            basket = {pick(CAMERAS, camera_w), pick(CARDS)}
            if rng.random() < 0.6:
                basket.add(pick(BAGS))
        elif r < 0.85:
            basket = {pick(TEAS), pick(MUGS)}
            if rng.random() < 0.3:
                basket.add(pick(TEAS))
        else:
            basket = {int(rng.integers(0, N_ITEMS - 1))}
            basket.discard(COLD_CAMERA)
        rows += [o] * len(basket)
        cols += sorted(basket)
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_orders, N_ITEMS))
    names, cats, prices = [], [], []
    for c, (path, noun) in enumerate(CATEGORIES):
        for i in range(PER_CATEGORY):
            names.append(f"{noun} model {chr(65 + i)}{c}")
            cats.append(path)
            prices.append(float(10 * (c + 1) + i))
    content = ItemContent(names, [""] * N_ITEMS, cats, np.asarray(prices))
    data = Interactions.from_baskets(X, content=content)
    data.extra["item_ids"] = [f"sku-{i}" for i in range(N_ITEMS)]
    return data


@pytest.fixture(scope="module")
def shop() -> Interactions:
    return make_shop()


@pytest.fixture(scope="module")
def model(shop: Interactions) -> NeuralRecommender:
    return NeuralRecommender(**PARAMS).fit(shop)


def test_the_shop_is_as_designed(shop: Interactions) -> None:
    counts = np.asarray(shop.baskets.sum(axis=0)).ravel()
    assert counts[COLD_CAMERA] == 0
    assert (counts[CAMERAS[:-1]] > 0).all()


def test_training_converges(model: NeuralRecommender) -> None:
    history = model.loss_history_
    assert len(history) >= 5
    assert history[-1] < 0.9 * history[0]
    assert model.n_steps_ == PARAMS["max_steps"]


def test_neighbours_are_the_designed_complements(model: NeuralRecommender) -> None:
    top = model.similar_items(CAMERAS[:3] + MUGS[:3], 5)
    complements = {c: set(CARDS + BAGS) for c in CAMERAS} | {m: set(TEAS) for m in MUGS}
    for row, q in enumerate(CAMERAS[:3] + MUGS[:3]):
        found = top.row(row)
        assert q not in found
        assert sum(j in complements[q] for j in found) >= 4, (q, found)


def test_a_cold_product_gets_its_categorys_complements(model: NeuralRecommender) -> None:
    found = model.similar_items([COLD_CAMERA], 5).row(0)
    assert len(found) == 5
    assert sum(j in set(CARDS + BAGS) for j in found) >= 4, found
    assert COLD_CAMERA not in found


def test_padding_only_when_candidates_run_out(model: NeuralRecommender) -> None:
    n_candidates = N_ITEMS - 1  # every item sold but the cold camera
    top = model.similar_items([CAMERAS[0], COLD_CAMERA], N_ITEMS + 5)
    assert len(top.row(0)) == n_candidates - 1  # not the camera itself
    assert len(top.row(1)) == n_candidates
    assert (top.indices[0, n_candidates - 1 :] == -1).all()
    assert len(set(top.row(0))) == len(top.row(0))
    scores = top.scores[1, :n_candidates]
    assert (np.diff(scores) <= 0).all()


def test_recommend_basket_completes_the_kit(model: NeuralRecommender) -> None:
    basket = [CAMERAS[0], CARDS[0]]
    found = model.recommend_basket(basket, 3).row(0)
    assert not set(found) & set(basket)
    assert found[0] in BAGS + CARDS


def test_save_load_round_trip(model: NeuralRecommender, tmp_path: Path) -> None:
    model.save(tmp_path, metrics={"ndcg_at_10": 0.5})
    assert {p.name for p in tmp_path.iterdir()} == {"model.keras", "arrays.npz", "metadata.json"}
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["n_items"] == N_ITEMS
    assert meta["metrics"] == {"ndcg_at_10": 0.5}
    assert meta["parameters"]["random_state"] == PARAMS["random_state"]
    loaded = NeuralRecommender.load(tmp_path, expected_items=[f"sku-{i}" for i in range(N_ITEMS)])
    items = np.arange(N_ITEMS)
    a, b = model.similar_items(items, 10), loaded.similar_items(items, 10)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(
        model.recommend_basket([1, 9], 5).indices, loaded.recommend_basket([1, 9], 5).indices
    )
    # The Keras file is a working model: it reproduces the saved query vectors.
    assert loaded.model_.get_layer("query_tower") is not None


def test_load_refuses_a_mismatched_artifact(model: NeuralRecommender, tmp_path: Path) -> None:
    model.save(tmp_path)
    ids = [f"sku-{i}" for i in range(N_ITEMS)]
    with pytest.raises(ArtifactMismatchError, match="the catalog has 41"):
        NeuralRecommender.load(tmp_path, expected_items=[*ids, "sku-new"])
    with pytest.raises(ArtifactMismatchError, match="another item index"):
        NeuralRecommender.load(tmp_path, expected_items=ids[::-1], load_model=False)
    with pytest.raises(ArtifactMismatchError, match="catalog has 39"):
        NeuralRecommender.load(tmp_path, expected_items=N_ITEMS - 1)
    meta_path = tmp_path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 999
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactMismatchError, match="format version 999"):
        NeuralRecommender.load(tmp_path)


def test_same_seed_same_model(shop: Interactions, model: NeuralRecommender) -> None:
    again = NeuralRecommender(**PARAMS).fit(shop)
    np.testing.assert_array_equal(again.query_vectors_, model.query_vectors_)
    other = NeuralRecommender(**{**PARAMS, "random_state": 8}).fit(shop)
    assert not np.array_equal(other.query_vectors_, model.query_vectors_)


def test_bad_input_is_refused(shop: Interactions, model: NeuralRecommender) -> None:
    with pytest.raises(IndexError):
        model.similar_items([N_ITEMS], 3)
    with pytest.raises(ValueError, match="id_dropout"):
        NeuralRecommender(id_dropout=1.5).fit(shop)
    empty = Interactions.from_baskets(sp.csr_matrix((3, N_ITEMS)))
    with pytest.raises(ValueError, match="no purchases"):
        NeuralRecommender(**PARAMS).fit(empty)
    with pytest.raises(RuntimeError, match="not fitted"):
        NeuralRecommender().similar_items([0], 3)


def test_without_tensorflow_the_error_says_what_to_install(
    model: NeuralRecommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model.save(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(ImportError, match=r'pip install "django-crosssell\[deep\]"'):
        NeuralRecommender()
    with pytest.raises(ImportError, match=r'pip install "django-crosssell\[deep\]"'):
        NeuralRecommender.load(tmp_path)
    # Serving from the saved arrays needs no TensorFlow.
    served = NeuralRecommender.load(tmp_path, load_model=False)
    assert served.similar_items([0], 3).row(0) == model.similar_items([0], 3).row(0)


def test_importing_the_engine_does_not_import_tensorflow() -> None:
    code = (
        "import importlib, importlib.util, sys\n"
        "import crosssell.engine, crosssell.engine.base, crosssell.engine.popularity\n"
        "import crosssell.engine.cooccurrence, crosssell.engine.neural_features\n"
        "if importlib.util.find_spec('crosssell.engine.registry'):\n"
        "    importlib.import_module('crosssell.engine.registry')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not bad, bad\n"
        "import crosssell.engine.neural\n"
        "assert 'tensorflow' not in sys.modules, 'importing the module must stay lazy too'\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
