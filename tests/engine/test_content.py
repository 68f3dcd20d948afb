"""Content features and the content strategies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemContent
from crosssell.engine.content import (
    CategoryCompanions,
    ContentCompanions,
    item_features,
    price_bands,
)
from crosssell.engine.hybrid import CoCountContent


def test_price_bands_are_quantiles_and_unknown_is_empty() -> None:
    bands = price_bands(np.array([1.0, 2.0, 3.0, 4.0, np.nan]), n_bands=2)
    assert bands == ["price:0", "price:0", "price:1", "price:1", ""]


def test_features_put_same_category_look_alikes_closest() -> None:
    content = ItemContent(
        ["red apple", "green apple", "tooth paste"],
        ["", "", ""],
        ["fruit > apples", "fruit > apples", "hygiene"],
        np.array([1.0, 1.2, 3.0]),
    )
    F = item_features(content)
    S = (F @ F.T).toarray()
    np.testing.assert_allclose(np.diag(S), 1.0)
    assert S[0, 1] > 0.5 > S[0, 2]


def test_content_companions_serve_a_product_with_no_sales(known: Interactions) -> None:
    model = ContentCompanions().fit(known)
    # item 7 was never sold; its look-alike item 0 sells with item 1
    assert model.similar_items([7], 2).row(0)[0] == 1


def test_no_content_means_no_lists(known: Interactions) -> None:
    bare = Interactions(known.baskets, known.customers, known.n_customers, None)
    top = ContentCompanions().fit(bare).similar_items([7], 3)
    assert top.row(0) == []


def _brute_category_scores(data: Interactions, m: float, b: float) -> np.ndarray:
    """Dense reference of CategoryCompanions: the recursion, item by item and level by level."""
    from crosssell.engine.popularity import category_levels

    assert data.content is not None
    X = data.baskets.toarray().astype(np.float64)
    pop = X.sum(axis=0)
    P = pop / X.shape[0]
    C = X.T @ X
    levels = category_levels(data.content.categories)
    out = np.zeros((data.n_items, data.n_items))
    for i, lv in enumerate(levels):
        if not lv:
            continue
        p = P.copy()
        for path in reversed(lv):  # from the top level down to the leaf
            members = [n for n, other in enumerate(levels) if path in other]
            new = np.empty_like(p)
            for j in range(data.n_items):
                others = [n for n in members if n != j]
                num = sum(C[n, j] for n in others)
                den = sum(pop[n] for n in others)
                new[j] = (num + m * p[j]) / (den + m)
            p = new
        out[i] = P ** (1 - b) * p**b
    return out


@pytest.mark.parametrize(("m", "b"), [(0.0, 1.0), (5.0, 1.0), (20.0, 0.5)])
def test_category_companions_match_the_dense_recursion(m: float, b: float) -> None:
    rng = np.random.default_rng(3)
    n_items = 12
    X = sp.csr_matrix((rng.random((80, n_items)) < 0.25).astype(np.float32))
    X = sp.csr_matrix(X.multiply(np.r_[np.ones(n_items - 1), 0.0]))  # item 11 never sold
    cats = ["a > x", "a > x", "a > y", "a > y", "a", "b > z", "b > z", "b", "", "a > x", "b", "a"]
    content = ItemContent([""] * n_items, [""] * n_items, cats, np.full(n_items, np.nan))
    data = Interactions.from_baskets(X, content=content)
    model = CategoryCompanions(prior=m, exponent=b, max_neighbours=n_items).fit(data)
    expected = _brute_category_scores(data, m, b)
    got = model.scores_.toarray()
    np.testing.assert_allclose(got, np.where(got > 0, expected, 0.0), rtol=1e-9, atol=1e-12)
    for i in range(n_items):
        want = [j for j in np.lexsort((np.arange(n_items), -expected[i])) if expected[i, j] > 0]
        want = [int(j) for j in want if j != i][:5]
        assert model.similar_items([i], 5).row(0) == (want if cats[i] else [])


def test_category_companions_serve_a_cold_product_what_its_shelf_sells_with(
    known: Interactions,
) -> None:
    # item 7 ("bakery > pies") never sold; its shelf-mate item 0 sells with item 1
    top = CategoryCompanions().fit(known).similar_items([7], 3)
    assert top.row(0)[0] == 1
    # exponent 0: the category's lift is ignored, popularity alone ranks
    flat = CategoryCompanions(exponent=0.0).fit(known).similar_items([7], 3)
    pop = np.asarray(known.baskets.sum(axis=0)).ravel()
    assert flat.row(0) == [int(j) for j in np.lexsort((np.arange(len(pop)), -pop))[:3]]
    with pytest.raises(ValueError):
        CategoryCompanions(exponent=2.0).fit(known)


def test_cocount_content_serves_cold_items_from_their_category(known: Interactions) -> None:
    with_cat = CoCountContent(category_weight=1.0).fit(known)
    without = CoCountContent(category_prior=None).fit(known)
    mixed = CoCountContent().fit(known)
    cat = CategoryCompanions().fit(known)
    # sold items are untouched; the cold item 7 gets its category's ranking
    for i in range(7):
        assert with_cat.similar_items([i], 5).row(0) == without.similar_items([i], 5).row(0)
        assert mixed.similar_items([i], 5).row(0) == without.similar_items([i], 5).row(0)
    assert with_cat.similar_items([7], 5).row(0) == cat.similar_items([7], 5).row(0)
    # the default mixes both estimates: the look-alike's companion still leads
    weights = mixed.scores_[7].toarray().ravel()
    expected = 30.0 * (0.75 * cat.scores_[7].toarray() + 0.25 * without.scores_[7].toarray() / 30)
    np.testing.assert_allclose(weights[weights > 0], expected.ravel()[weights > 0], rtol=1e-9)
    assert mixed.similar_items([7], 1).row(0) == [1]
    with pytest.raises(ValueError):
        CoCountContent(category_weight=1.5).fit(known)


@pytest.mark.shared_data
def test_default_beats_popularity_on_the_groceries_cold_slice(shared_data: Path) -> None:
    from crosssell.engine.evaluation.data import read_products, read_purchases
    from crosssell.engine.evaluation.fbt import evaluate_fbt, fbt_split
    from crosssell.engine.popularity import Popularity
    from crosssell.engine.registry import DEFAULT_STRATEGY, build_item_strategy

    root = shared_data / "groceries"
    cold = fbt_split(
        read_purchases(root / "purchases.csv.gz"),
        read_products(root / "products.csv.gz"),
        cold=True,
    )
    ours = evaluate_fbt(build_item_strategy(DEFAULT_STRATEGY), cold)["ndcg@10"]
    assert ours > evaluate_fbt(Popularity(), cold)["ndcg@10"]
