"""Per-shop tuning: the known best setting is found, and it beats the defaults on new orders."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from crosssell.engine.base import Interactions, ItemRecommender
from crosssell.engine.blend import Blend
from crosssell.engine.cart import (
    DEFAULT_LENGTH,
    DEFAULT_LIFT,
    DEFAULT_SHRINK,
    cart_vectors,
    score_cart,
)
from crosssell.engine.cooccurrence import CoCount
from crosssell.engine.evaluation.holdout import holdout_metrics, holdout_split
from crosssell.engine.evaluation.metrics import ndcg
from crosssell.engine.hybrid import CoCountContent
from crosssell.engine.item_knn import ItemKNN
from crosssell.engine.popularity import Popularity
from crosssell.engine.registry import build_strategy
from crosssell.engine.similarity import cooccurrence_counts
from crosssell.engine.tuning import CART_GRID, _cart_top, tunable_step, tune, with_params
from crosssell.engine.wrappers import ColdOnly
from tests.engine.tuning_shop import Cart, held_out_queries, pairs_shop, split_shop

K = 10


def product_ndcg(
    model: ItemRecommender, queries: list[tuple[int, int]], baskets: sp.csr_matrix
) -> float:
    """NDCG@10 of a fitted strategy's lists (``similar_items``) over ``(order, product)``
    queries of ``baskets``: the rest of the order is relevant."""
    products = np.unique([q for _, q in queries])
    top = model.similar_items(products, K).indices
    row_of = {int(p): i for i, p in enumerate(products.tolist())}
    hits = np.zeros((len(queries), K), dtype=bool)
    n_rel = np.zeros(len(queries), dtype=np.int64)
    for n, (order, q) in enumerate(queries):
        relevant = set(baskets.indices[baskets.indptr[order] : baskets.indptr[order + 1]].tolist())
        relevant.discard(q)
        hits[n] = [int(j) in relevant for j in top[row_of[q]]]
        n_rel[n] = len(relevant)
    return float(ndcg(hits, n_rel).mean())


def cart_ndcg(data: Interactions, carts: list[Cart], shrink: float, lift: float) -> float:
    """NDCG@10 of the cart vectors computed with ``shrink`` and ``lift`` on ``data`` (as a
    build does), each cart ranked by :func:`score_cart` then filled with bestsellers."""
    counts = cooccurrence_counts(data.baskets)
    vectors = cart_vectors(counts, shrink=shrink, lift=lift, length=DEFAULT_LENGTH).parts()
    head = Popularity().fit(data).order_[:50].tolist()
    hits = np.zeros((len(carts), K), dtype=bool)
    for n, (cart, rest) in enumerate(carts):
        parts = [vectors[int(q)] for q in cart.tolist() if int(q) in vectors]
        ranked = score_cart(parts, cart.tolist(), top=K)[0].tolist()
        taken = {*ranked, *cart.tolist()}
        shown = ranked + [j for j in head if j not in taken][: K - len(ranked)]
        hits[n] = np.isin(shown[:K], rest)
    return float(ndcg(hits, np.array([len(rest) for _, rest in carts])).mean())


@pytest.fixture(scope="module")
def shop() -> Interactions:
    return pairs_shop()


def test_the_tuner_picks_the_known_best_setting_not_the_defaults(shop: Interactions) -> None:
    result = tune(shop, Blend())
    product, cart = result.product, result.cart
    assert product is not None and cart is not None, result.notes
    # the product page: no content prior (counts alone rank a product's partner first)
    assert product.strategy == "cocount_content"
    assert product.defaults == {"prior": 30.0, "content_prior": 300.0}
    assert product.chosen["prior"] == 0.0
    assert product.ndcg > product.default_ndcg + 0.05
    assert product.trials[0].params == product.defaults
    assert product.trials[0].ndcg == product.default_ndcg
    assert product.ndcg == max(t.ndcg for t in product.trials)
    # the cart: little shrink (a rare product vouches for its partner) or the largest lift (the
    # staples every cart holds by chance step back); the defaults have neither
    assert cart.defaults == {"shrink": DEFAULT_SHRINK, "lift": DEFAULT_LIFT}
    assert cart.chosen["lift"] == max(CART_GRID["lift"]) or cart.chosen["shrink"] <= 5.0
    at_default_lift = {
        t.params["shrink"]: t.ndcg for t in cart.trials if t.params["lift"] == DEFAULT_LIFT
    }
    assert at_default_lift[0.0] > at_default_lift[DEFAULT_SHRINK] + 0.1
    assert result.cart_params == cart.chosen
    assert cart.ndcg > cart.default_ndcg + 0.05
    assert product.queries >= 1_000 and cart.queries >= 300
    # the strategy served is the blend with the chosen values, nothing else changed
    assert isinstance(result.model, Blend)
    step = result.model.steps[0]
    assert isinstance(step, CoCountContent)
    assert (step.prior, step.content_prior) == (0.0, product.chosen["content_prior"])
    assert list(result.model.steps[1:]) == ["popularity"]
    dumped = result.as_dict()
    assert dumped["product"]["chosen"]["prior"] == 0.0
    assert dumped["cart"]["chosen"] == cart.chosen
    assert set(dumped) == {"seconds", "product", "cart"}


def test_a_tuned_strategy_beats_the_default_on_orders_it_never_saw() -> None:
    data, test = split_shop(8_000, 2_000)
    queries, carts = held_out_queries(test)
    sold = data.baskets.getnnz(axis=0) > 0
    queries = [(o, q) for o, q in queries if sold[q]]
    result = tune(data, Blend())
    tuned = result.model.fit(data)
    default = Blend().fit(data)
    assert product_ndcg(tuned, queries, test) > product_ndcg(default, queries, test) + 0.05
    assert result.cart_params is not None
    carts = [(c, r) for c, r in carts if sold[c].all()]
    chosen = cart_ndcg(data, carts, **result.cart_params)
    assert chosen > cart_ndcg(data, carts, DEFAULT_SHRINK, DEFAULT_LIFT) + 0.05


def test_the_validation_ndcg_is_the_fitted_strategys(shop: Interactions) -> None:
    """Re-scoring the shared counts gives the lists a strategy fitted with those values gives."""
    split = holdout_split(shop)
    assert split is not None
    result = tune(shop, Blend(), split=split, max_queries=len(split.queries), cart=False)
    assert result.product is not None
    trials = {tuple(t.params.values()): t.ndcg for t in result.product.trials}
    for prior, content_prior in [(30.0, 300.0), (0.0, 300.0), (10.0, 100.0), (100.0, 1000.0)]:
        blend = Blend(
            steps=[("cocount_content", {"prior": prior, "content_prior": content_prior})]
        ).fit(split.train)
        expected = product_ndcg(blend, split.queries, shop.baskets)
        assert trials[(prior, content_prior)] == pytest.approx(expected, abs=1e-9)
    # the offline metrics read the copy the tuning fitted: the same figures as a new fit
    shared = holdout_metrics(shop, lambda: Blend(), split=split, fitted=result.fitted)
    fresh = holdout_metrics(shop, lambda: result.model, split=split)
    assert shared == fresh and shared["ndcg@10"] == round(result.product.ndcg, 4)


def test_cocount_is_tuned_too(shop: Interactions) -> None:
    model = build_strategy("cocount")  # prior 30
    result = tune(shop, model, cart=False)
    assert result.product is not None
    assert result.product.defaults == {"prior": 30.0}
    assert result.product.chosen == {"prior": 0.0}
    assert isinstance(result.model, CoCount) and result.model.prior == 0.0
    assert model.prior == 30.0  # the given strategy is left as it was
    fitted = result.fitted
    assert isinstance(fitted, CoCount)
    split = result.split
    assert split is not None
    refit = CoCount(prior=0.0).fit(split.train)
    rows = np.arange(0, shop.n_items, 7)
    assert np.array_equal(
        fitted.similar_items(rows, K).indices, refit.similar_items(rows, K).indices
    )


def test_the_cart_reads_the_product_pages_counts_as_its_own(shop: Interactions) -> None:
    """With ``cocount`` the cart reuses the product page's co-counts: the same figures."""
    shared = tune(shop, CoCount(), max_carts=400)
    alone = tune(shop, CoCount(), product=False, max_carts=400)
    assert shared.cart is not None and alone.cart is not None
    assert shared.cart.trials == alone.cart.trials


def test_the_carts_rank_as_score_cart_ranks_them(shop: Interactions) -> None:
    counts = cooccurrence_counts(shop.baskets)
    items = np.arange(0, shop.n_items, 3)
    vectors = cart_vectors(counts, items=items, shrink=5.0)
    rng = np.random.default_rng(3)
    carts = [np.sort(rng.choice(items, size=rng.integers(1, 6), replace=False)) for _ in range(300)]
    row_of = np.repeat(np.arange(len(carts)), [len(c) for c in carts])
    in_cart = np.sort(row_of * shop.n_items + np.concatenate(carts))
    top = _cart_top(vectors, carts, in_cart, shop.n_items)
    parts = vectors.parts()
    for n, cart in enumerate(carts):
        found = [parts[int(q)] for q in cart.tolist() if int(q) in parts]
        expected = score_cart(found, cart.tolist(), top=K)[0]
        assert top[n][top[n] >= 0].tolist() == expected.tolist()


def test_a_custom_strategy_is_served_as_it_is(shop: Interactions) -> None:
    model = ItemKNN()
    result = tune(shop, model)
    assert result.product is None and result.model is model and result.fitted is None
    assert any("product page" in note and "item_knn" in note for note in result.notes)
    assert result.cart is not None  # the cart is tuned whatever the product page serves
    blend = Blend(steps=["item_knn", "popularity"])
    assert tune(shop, blend, cart=False).model is blend


def test_tunable_steps_of_a_blend() -> None:
    cold = ColdOnly(CoCount())
    blend = Blend(steps=[cold, ("cocount_content", {"prior": 50.0}), "popularity"])
    found = tunable_step(blend)
    assert found is not None
    position, est = found
    assert position == 1 and isinstance(est, CoCountContent) and est.prior == 50.0
    assert tunable_step(Blend(steps=["item_knn"])) is None
    bare = CoCount(prior=3.0)
    assert tunable_step(bare) == (None, bare)
    copy = with_params(est, prior=0.0)
    assert isinstance(copy, CoCountContent)
    assert copy.prior == 0.0 and copy.content_prior == est.content_prior and est.prior == 50.0


def test_too_few_orders_leave_the_defaults() -> None:
    data = pairs_shop(n_orders=60, n_pairs=20)
    model = Blend()
    result = tune(data, model)
    assert result.product is None and result.cart is None
    assert result.model is model and result.notes
    assert "seconds" in result.as_dict() and "notes" in result.as_dict()


def test_the_tuning_is_deterministic(shop: Interactions) -> None:
    def figures(model: ItemRecommender) -> dict[str, object]:
        out = tune(shop, model, max_queries=800, max_carts=300).as_dict()
        out.pop("seconds")
        for part in ("product", "cart"):
            out[part].pop("seconds")
        return out

    assert figures(Blend()) == figures(Blend())
