"""The build's tuning (``CROSSSELL_TUNE``) and offline metrics (``CROSSSELL_OFFLINE_METRICS``).

Both read one split of the shop's orders (a seeded tenth held out): the engine
(:mod:`crosssell.engine.tuning`) picks the product-page strategy's and the cart's few
hyperparameters on it, and the offline metrics score the tuned strategy on it with the copy the
tuning already fitted. The result is kept in ``Build.metrics["tuning"]`` (a measurement); the
chosen cart ``shrink`` and ``lift`` are those the build's cart vectors are computed with
(``Build.parameters["cart"]``, :class:`~crosssell.services.cart_store.CartParameters`).
:func:`summary` is what the build's admin page shows.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crosssell.conf import settings
from crosssell.engine.base import Interactions, ItemRecommender
from crosssell.engine.cart import CART_STRATEGY
from crosssell.engine.evaluation.holdout import holdout_metrics, holdout_split
from crosssell.engine.tuning import tune, with_chosen
from crosssell.models import Build
from crosssell.services.cart_store import CartParameters

#: ``Build.metrics`` key of the tuning's result.
TUNING_KEY = "tuning"


def tune_and_measure(
    build: Build, data: Interactions, model: ItemRecommender
) -> tuple[ItemRecommender, dict[str, Any]]:
    """Tune ``model`` and the cart on the held-out split, then measure the tuned model there.

    Parameters
    ----------
    build
        The running build: its cart parameters are the cart's defaults, and the chosen
        ``shrink`` is recorded there for its cart vectors.
    data
        The extracted orders.
    model
        The unfitted strategy the build would serve.

    Returns
    -------
    model, metrics
        The strategy to fit and serve (``model`` itself when nothing changed or
        ``CROSSSELL_TUNE`` is off), and the offline metrics with the tuning's result under
        ``"tuning"``.
    """
    metrics: dict[str, Any] = {}
    if not (settings.TUNE or settings.OFFLINE_METRICS):
        return model, metrics
    seed = int(settings.RANDOM_STATE)
    split = holdout_split(data, random_state=seed)
    fitted: ItemRecommender | None = None
    if settings.TUNE:
        cart = CartParameters.of(build)
        result = tune(
            data,
            model,
            split=split,
            random_state=seed,
            cart_shrink=cart.shrink,
            cart_lift=cart.lift,
            cart_length=cart.length,
        )
        model, fitted = result.model, result.fitted
        metrics[TUNING_KEY] = result.as_dict()
        chosen = result.cart_params
        if chosen is not None and chosen != {"shrink": cart.shrink, "lift": cart.lift}:
            use_cart_params(build, chosen)
    if settings.OFFLINE_METRICS and split is not None:
        # A fresh copy fitted on 90% of the orders (the tuning's, when it fitted one), asked
        # about the other 10%.
        unfitted = copy.deepcopy(model) if fitted is None else model
        metrics.update(
            holdout_metrics(data, lambda: copy.deepcopy(unfitted), split=split, fitted=fitted)
        )
    return model, metrics


def tuned_model(build: Build, model: ItemRecommender) -> ItemRecommender:
    """``model`` with the product-page values ``build``'s tuning chose (a chord's shard fits
    what the chord's first task tuned); ``model`` itself when nothing was chosen."""
    tuning = (build.metrics or {}).get(TUNING_KEY)
    product = tuning.get("product") if isinstance(tuning, Mapping) else None
    chosen = product.get("chosen") if isinstance(product, Mapping) else None
    if not isinstance(chosen, Mapping) or chosen == (product or {}).get("defaults"):
        return model
    return with_chosen(model, {str(k): float(v) for k, v in chosen.items()})


def use_cart_params(build: Build, chosen: Mapping[str, float]) -> None:
    """Compute ``build``'s cart vectors with the ``chosen`` values (``shrink``, ``lift``), kept
    in its ``parameters["cart"]``, where :meth:`CartParameters.of` reads them."""
    params = dict(build.parameters or {})
    current = params.get(CART_STRATEGY)
    cart = dict(current) if isinstance(current, Mapping) else {}
    cart.update({name: float(value) for name, value in chosen.items()})
    build.parameters = {**params, CART_STRATEGY: cart}
    Build.objects.filter(pk=build.pk).update(parameters=build.parameters)


# --- the admin's view of it ----------------------------------------------------------------


@dataclass(frozen=True)
class ParameterRow:
    """One hyperparameter: its chosen and default values."""

    name: str
    chosen: str
    default: str
    changed: bool


@dataclass(frozen=True)
class PartSummary:
    """One widget's tuning as the admin shows it."""

    label: str
    parameters: list[ParameterRow]
    ndcg: str
    default_ndcg: str
    queries: int
    unit: str
    seconds: str


@dataclass(frozen=True)
class TuningSummary:
    """A build's tuning as the admin shows it."""

    parts: list[PartSummary]
    seconds: str
    notes: list[str] = field(default_factory=list)


LABELS = {"cart": "Cart", "cocount_content": "Product page", "cocount": "Product page"}


def summary(build: Build) -> TuningSummary | None:
    """What ``build``'s tuning chose, for its admin page (``None``: it did not tune)."""
    raw = (build.metrics or {}).get(TUNING_KEY)
    if not isinstance(raw, Mapping):
        return None
    parts = []
    for key in ("product", "cart"):
        part = raw.get(key)
        if not isinstance(part, Mapping):
            continue
        chosen = part.get("chosen") or {}
        defaults = part.get("defaults") or {}
        strategy = str(part.get("strategy", key))
        label = LABELS.get(strategy, strategy)
        if strategy != "cart":
            label = f"{label} ({strategy})"
        parts.append(
            PartSummary(
                label=label,
                parameters=[
                    ParameterRow(
                        str(name),
                        _number(value),
                        _number(defaults.get(name)),
                        value != defaults.get(name),
                    )
                    for name, value in chosen.items()
                ],
                ndcg=_number(part.get("ndcg@10"), 4),
                default_ndcg=_number(part.get("default_ndcg@10"), 4),
                queries=int(part.get("queries", 0) or 0),
                unit="carts" if strategy == "cart" else "queries",
                seconds=_number(part.get("seconds"), 2),
            )
        )
    notes = [str(n) for n in raw.get("notes", []) if n]
    return TuningSummary(parts, _number(raw.get("seconds"), 2), notes)


def _number(value: Any, digits: int | None = None) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    if digits is not None:
        return f"{value:.{digits}f}"
    return f"{value:g}"


__all__ = [
    "TUNING_KEY",
    "PartSummary",
    "TuningSummary",
    "summary",
    "tune_and_measure",
    "use_cart_params",
]
