"""The contract every strategy in the registry keeps, on a matrix with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from crosssell.engine.base import Interactions, ItemRecommender, TopK, UserRecommender
from crosssell.engine.blend import Blend
from crosssell.engine.registry import (
    DEFAULT_STRATEGY,
    DEFAULT_USER_STRATEGY,
    STRATEGIES,
    available_strategies,
    build_strategy,
    is_user_strategy,
)
from tests.engine.conftest import REPEAT, known_answer_data

#: Strategies that learn what is bought together: item 1 is item 0's best companion.
LEARNS_PAIRS = {
    "cocount",
    "cocount_content",
    "rules",
    "item_knn",
    "item_bm25",
    "item_asymmetric",
    "blend",
}
NAMES = [n for n in available_strategies() if n != "neural"]


def _check_lists(top: TopK, queries: list[set[int]], k: int, n_items: int) -> None:
    assert top.indices.shape == (len(queries), k) == top.scores.shape
    for row, exclude in zip(top.indices, queries, strict=True):
        valid = row[row >= 0]
        # padding only at the tail, no duplicates, never a query item, indices in range
        assert (row[: len(valid)] >= 0).all() and (row[len(valid) :] == -1).all()
        assert len(set(valid.tolist())) == len(valid)
        assert not (set(valid.tolist()) & exclude)
        assert (valid < n_items).all()


def test_registry_lists_the_lazy_neural_entry_without_importing_it() -> None:
    import sys

    assert STRATEGIES["neural"][0] == "crosssell.engine.neural.NeuralRecommender"
    assert "neural" not in available_strategies(include_lazy=False)
    assert DEFAULT_STRATEGY in STRATEGIES and DEFAULT_USER_STRATEGY in STRATEGIES
    # looking names up never imports the neural module (TensorFlow)
    before = "crosssell.engine.neural" in sys.modules
    for name in NAMES:
        build_strategy(name)
    assert ("crosssell.engine.neural" in sys.modules) == before


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_params_are_stored(name: str) -> None:
    est = build_strategy(name)
    data = known_answer_data(REPEAT)
    assert est.fit(data) is est
    assert isinstance(est.name, str) and est.name
    # scikit-learn convention: fitted state ends in "_" and is absent before fit
    fitted = [a for a in vars(est) if a.endswith("_") and not a.startswith("_")]
    assert fitted, "a fitted strategy keeps learned attributes ending in '_'"
    assert not any(a.endswith("_") and not a.startswith("_") for a in vars(build_strategy(name)))


@pytest.mark.parametrize("name", [n for n in NAMES if not is_user_strategy(n)])
@pytest.mark.parametrize("k", [3, 12])
def test_item_strategy_contract(name: str, k: int) -> None:
    data = known_answer_data(REPEAT)
    est = build_strategy(name).fit(data)
    assert isinstance(est, ItemRecommender)
    items = np.arange(data.n_items)
    top = est.similar_items(items, k)
    _check_lists(top, [{int(i)} for i in items], k, data.n_items)
    basket = est.recommend_basket([0, 2, 2], k)
    _check_lists(basket, [{0, 2}], k, data.n_items)
    # deterministic: a second fit gives the same lists
    again = build_strategy(name).fit(data).similar_items(items, k)
    np.testing.assert_array_equal(top.indices, again.indices)
    np.testing.assert_allclose(top.scores, again.scores, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(LEARNS_PAIRS))
def test_known_answer_pairs(name: str) -> None:
    est = build_strategy(name).fit(known_answer_data(REPEAT))
    top = est.similar_items([0, 1, 2, 4], 1)
    assert top.indices[:, 0].tolist() == [1, 0, 3, 5]
    assert est.recommend_basket([2], 1).indices[0, 0] == 3


def test_known_answer_popularity_and_content() -> None:
    data = known_answer_data(REPEAT)
    pop = build_strategy("popularity").fit(data)
    assert pop.similar_items([0, 5], 2).indices.tolist() == [[1, 2], [0, 1]]
    # a never-sold product that looks like item 0 gets item 0's companion first
    content = build_strategy("content").fit(data)
    assert content.similar_items([7], 1).indices[0, 0] == 1
    looks = build_strategy("content_similar").fit(data)
    assert looks.similar_items([7], 1).indices[0, 0] == 0
    cat = build_strategy("category_popularity").fit(data)
    assert cat.similar_items([4], 1).indices[0, 0] == 5


def test_blend_fills_every_list_and_records_sources() -> None:
    data = known_answer_data(REPEAT)
    blend = build_strategy("blend").fit(data)
    assert isinstance(blend, Blend)
    top = blend.similar_items(np.arange(data.n_items), data.n_items - 1)
    assert (top.indices >= 0).all(), "the blend always fills the list"
    assert top.sources is not None and top.sources.shape == top.indices.shape
    names = [top.source_names[s] for s in top.sources[0]]
    assert names[0] == "cocount_content" and names[-1] == "popularity"
    cart = blend.recommend_basket([0, 1], 5)
    assert (cart.indices >= 0).all() and not ({0, 1} & set(cart.indices[0].tolist()))


@pytest.mark.parametrize("name", [n for n in NAMES if is_user_strategy(n)])
@pytest.mark.parametrize("k", [2, 10])
def test_user_strategy_contract(name: str, k: int) -> None:
    data = known_answer_data(REPEAT)
    est = build_strategy(name).fit(data)
    assert isinstance(est, UserRecommender)
    customers = np.arange(data.n_customers)
    top = est.recommend(customers, k)
    seen = data.customer_items()
    _check_lists(top, [set(seen[c].indices.tolist()) for c in customers], k, data.n_items)
    # customer 0 bought item 0 only; its look-alike customers bought item 1 with it
    assert top.indices[0, 0] == 1
    with_seen = est.recommend([1], data.n_items, exclude_seen=False)
    assert {0, 1} <= set(with_seen.indices[0].tolist())
    again = build_strategy(name).fit(data).recommend(customers, k)
    np.testing.assert_array_equal(top.indices, again.indices)
    with pytest.raises(IndexError):
        est.recommend([data.n_customers], k)


def test_build_strategy_params_and_dotted_paths() -> None:
    est = build_strategy("cocount", prior=0.0)
    assert est.prior == 0.0  # type: ignore[union-attr]
    dotted = build_strategy("crosssell.engine.popularity.Popularity")
    assert type(dotted).__name__ == "Popularity"
    with pytest.raises(KeyError, match="unknown strategy"):
        build_strategy("no-such-strategy")
    with pytest.raises(TypeError):
        build_strategy("crosssell.engine.base.TopK")
    with pytest.raises(TypeError):
        build_strategy("cocount", no_such_param=1)
    with pytest.raises(ImportError):
        build_strategy("crosssell.engine.nowhere.Nothing")


def test_blend_accepts_instances_and_pairs() -> None:
    data: Interactions = known_answer_data(REPEAT)
    pop = build_strategy("popularity")
    blend = Blend(steps=[("cocount", {"prior": 0.0}), pop], limits=[1, None]).fit(data)
    top = blend.similar_items([0], 4)
    assert top.indices[0, 0] == 1
    assert top.source_names[:2] == ["cocount", "popularity"]
    assert top.sources is not None and top.sources[0, 1] == 1  # cocount capped at one slot


def test_typed_builders_check_the_kind() -> None:
    from crosssell.engine.registry import build_item_strategy, build_user_strategy

    assert isinstance(build_item_strategy("blend"), ItemRecommender)
    assert isinstance(build_user_strategy("ease"), UserRecommender)
    with pytest.raises(TypeError):
        build_item_strategy("ease")
    with pytest.raises(TypeError):
        build_user_strategy("cocount")
