"""Popularity and category popularity."""

from __future__ import annotations

from crosssell.engine.base import Interactions
from crosssell.engine.popularity import CategoryPopularity, Popularity, category_levels


def test_category_levels_most_specific_first() -> None:
    assert category_levels(["Photo > Cameras", "", "Food"]) == [
        ["photo>cameras", "photo"],
        [],
        ["food"],
    ]


def test_popularity_skips_unsold_unless_asked(known: Interactions) -> None:
    assert 7 not in Popularity().fit(known).similar_items([0], 7).row(0)
    assert Popularity(include_unsold=True).fit(known).similar_items([0], 7).row(0)[-1] == 7


def test_category_popularity_falls_back_to_global(known: Interactions) -> None:
    model = CategoryPopularity().fit(known)
    # item 7 (bakery > pies, unsold): its category's seller (0) first, then global bestsellers
    assert model.similar_items([7], 3).row(0) == [0, 1, 2]
    assert CategoryPopularity(fallback_global=False).fit(known).similar_items([6], 3).row(0) == []
