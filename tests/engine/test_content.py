"""Content features and the content strategies."""

from __future__ import annotations

import numpy as np

from crosssell.engine.base import Interactions, ItemContent
from crosssell.engine.content import ContentCompanions, item_features, price_bands


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
