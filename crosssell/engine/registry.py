"""Strategy names, their classes and default parameters, and the one the shop serves.

``build_strategy("cocount")`` gives an unfitted strategy with its tuned defaults;
``build_strategy("cocount", prior=0)`` overrides a parameter; a dotted path to a class
(``"myshop.recs.MyRecommender"``) works too. Classes are imported only when built, so asking
for ``"neural"`` is the only way TensorFlow is ever imported.
"""

from __future__ import annotations

import importlib
from typing import Any

from crosssell.engine.base import ItemRecommender, UserRecommender

Strategy = ItemRecommender | UserRecommender

#: name -> (dotted path of the class, default parameters). The defaults are the ones tuned on
#: validation splits carved from the training part of FBT-v1 / PERSONAL-MS (BENCHMARKS.md).
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "popularity": ("crosssell.engine.popularity.Popularity", {}),
    "category_popularity": ("crosssell.engine.popularity.CategoryPopularity", {}),
    "cocount": ("crosssell.engine.cooccurrence.CoCount", {"prior": 30.0}),
    "cocount_content": ("crosssell.engine.hybrid.CoCountContent", {}),
    "rules": ("crosssell.engine.rules.AssociationRules", {}),
    "item_knn": ("crosssell.engine.item_knn.ItemKNN", {}),
    "item_bm25": ("crosssell.engine.item_knn.ItemKNN", {"weighting": "bm25"}),
    "item_asymmetric": (
        "crosssell.engine.item_knn.ItemKNN",
        {"similarity": "asymmetric", "alpha": 0.9, "shrink": 10.0},
    ),
    "content": ("crosssell.engine.content.ContentCompanions", {}),
    "content_similar": ("crosssell.engine.content.ContentSimilar", {}),
    "category_companions": ("crosssell.engine.content.CategoryCompanions", {}),
    "blend": ("crosssell.engine.blend.Blend", {}),
    "user_knn": ("crosssell.engine.user_knn.UserKNN", {}),
    "ease": ("crosssell.engine.user_knn.EASE", {}),
    # another module's strategy (TensorFlow): imported only when asked for
    "neural": ("crosssell.engine.neural.NeuralRecommender", {}),
}

#: The strategies whose slots are not co-purchase evidence for their pair: they fill a list
#: rather than say the two products are bought together. Bestsellers (``popularity``,
#: ``category_popularity`` at build time, ``bestsellers``, ``category_bestsellers`` at serving
#: time), content look-alikes (``content_similar``), and companions borrowed from other
#: products: the look-alikes' (``content``), the category's (``category_companions``) and the
#: neural model's content path (``neural``: the shop's blend asks it only for products sold in
#: at most ``CROSSSELL_NEURAL_MAX_SALES`` orders, 2 by default, under the privacy threshold of
#: 3 customers, so none of its slots rests on the product's own co-purchases). One definition:
#: serving weighs these slots less in a cart's fused list, and the admin's coverage does not
#: count them as real recommendations.
FALLBACK_STRATEGIES: frozenset[str] = frozenset(
    {
        "popularity",
        "category_popularity",
        "bestsellers",
        "category_bestsellers",
        "content",
        "content_similar",
        "category_companions",
        "neural",
    }
)

#: The strategy the shop serves by default ("frequently bought together" and cart completion).
DEFAULT_STRATEGY = "blend"
#: The default "recommended for you" strategy.
DEFAULT_USER_STRATEGY = "ease"


def import_class(path: str) -> type:
    """The class at dotted ``path`` (``"package.module.Class"``)."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{path!r} is neither a strategy name nor a dotted path to a class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import strategy module {module_name!r}: {exc}") from exc
    try:
        cls = getattr(module, attr)
    except AttributeError as exc:
        raise ImportError(f"module {module_name!r} has no class {attr!r}") from exc
    if not isinstance(cls, type):
        raise TypeError(f"{path!r} is not a class")
    return cls


def strategy_class(name: str) -> type:
    """The class behind a strategy name or dotted path (imported now)."""
    path = STRATEGIES[name][0] if name in STRATEGIES else name
    if name not in STRATEGIES and "." not in name:
        known = ", ".join(sorted(STRATEGIES))
        raise KeyError(f"unknown strategy {name!r}; known: {known} (or a dotted path)")
    return import_class(path)


def default_params(name: str) -> dict[str, Any]:
    """The registry's default parameters of ``name`` (``{}`` for a dotted path)."""
    return dict(STRATEGIES[name][1]) if name in STRATEGIES else {}


def build_strategy(name: str, **params: Any) -> Any:
    """An unfitted strategy: registry defaults, overridden by ``params``.

    Parameters
    ----------
    name
        A registry name (``available_strategies()``) or a dotted path to a class.
    **params
        Constructor parameters.

    Returns
    -------
    ItemRecommender or UserRecommender
        Typed ``Any`` so that callers may annotate what they asked for;
        :func:`build_item_strategy` and :func:`build_user_strategy` check it.

    Raises
    ------
    KeyError
        Unknown name.
    TypeError
        The class is not an ``ItemRecommender`` or ``UserRecommender``, or a parameter is wrong.
    """
    cls = strategy_class(name)
    if not issubclass(cls, ItemRecommender | UserRecommender):
        raise TypeError(f"{name!r} is not an ItemRecommender or UserRecommender")
    est: Strategy = cls(**{**default_params(name), **params})
    return est


def build_item_strategy(name: str, **params: Any) -> ItemRecommender:
    """:func:`build_strategy`, checked to rank items for items and carts."""
    est = build_strategy(name, **params)
    if not isinstance(est, ItemRecommender):
        raise TypeError(f"{name!r} ranks items for customers, not for products or carts")
    return est


def build_user_strategy(name: str, **params: Any) -> UserRecommender:
    """:func:`build_strategy`, checked to rank items for customers."""
    est = build_strategy(name, **params)
    if not isinstance(est, UserRecommender):
        raise TypeError(f"{name!r} ranks items for products or carts, not for customers")
    return est


def available_strategies(include_lazy: bool = True) -> list[str]:
    """Registry names (``include_lazy=False`` leaves out ``"neural"``, another module's)."""
    return [n for n in STRATEGIES if include_lazy or n != "neural"]


def is_user_strategy(name: str) -> bool:
    """Whether ``name`` ranks items for customers (``UserRecommender``) rather than items."""
    return issubclass(strategy_class(name), UserRecommender)
