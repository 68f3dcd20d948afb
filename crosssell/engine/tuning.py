"""Per-shop tuning: each rebuild picks a few hyperparameters on the shop's own orders.

The defaults were tuned on two public data sets (BENCHMARKS.md, "Tuning"); a shop differs. On
the split the build's offline metrics use (:func:`~crosssell.engine.evaluation.holdout.
holdout_split`: a seeded tenth of the orders held out), two small grids are tried:

- **The product page** ("frequently bought together"): the co-purchase strategy of the served
  blend, :class:`~crosssell.engine.hybrid.CoCountContent` (its ``prior``, the weight of the
  content estimate, and ``content_prior``, that estimate's own shrinkage toward popularity) or
  :class:`~crosssell.engine.cooccurrence.CoCount` (its ``prior``). Each held-out product that
  sold in the fitted part is asked for 10 companions (the strategy's, then bestsellers, as the
  blend fills a list); the rest of its order is relevant, as in FBT-v1. The expensive part of the
  fit (counts, look-alikes, categories) is computed once and re-scored for each value, and only
  for the validation products. ``category_weight`` is not tuned: it only weighs the estimate of
  products with no sales, and a validation product has sales.
- **The cart** ("you may also need"): the ``shrink`` and ``lift`` of the cart vectors
  (:mod:`crosssell.engine.cart`): held-out baskets of at least 3 products sold in the fitted
  part are split into a cart and the rest, as CART-v1 does; the cart is ranked from its
  products' vectors, computed for the carts' products only, as the build computes them (but
  for the privacy threshold, judged by the pairs' orders rather than their customers).

The setting with the best validation NDCG@10 wins if its gain over the defaults is significant
(more than twice its standard error, paired over the validation queries), else the defaults
stay: on a small shop a noisy winner is no reason to leave them. The result says what was
chosen, the validation NDCG of the chosen setting and of the defaults, and returns the tuned
(unfitted) strategy and a copy fitted on the fitted part, which the offline metrics use instead
of fitting one again. A strategy the tuner does not know (a custom one) is served as it is.
Deterministic for a given seed.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import IntArray, Interactions, ItemRecommender, TopK
from crosssell.engine.blend import Blend, StepSpec
from crosssell.engine.cart import (
    DEFAULT_LENGTH,
    DEFAULT_LIFT,
    DEFAULT_SHRINK,
    CartVectors,
    cart_vectors,
    vector_weights,
)
from crosssell.engine.cooccurrence import CoCount
from crosssell.engine.evaluation.holdout import HoldoutSplit, holdout_split
from crosssell.engine.evaluation.metrics import ndcg
from crosssell.engine.evidence import privacy_threshold
from crosssell.engine.hybrid import CoCountContent, CoCountContentParts
from crosssell.engine.popularity import Popularity
from crosssell.engine.similarity import (
    binary_counts_matrix,
    column_counts,
    cooccurrence_counts,
    lookup_pairs,
)

K = 10
#: Validation queries asked per setting (product page) and validation carts.
MAX_QUERIES = 5_000
MAX_CARTS = 3_000
#: Below this many validation queries (carts) a choice would be noise: the defaults stay.
MIN_QUERIES = 200
MIN_CARTS = 100
#: Above it, a setting replaces the defaults only when its validation gain exceeds this many
#: standard errors (paired over the queries).
SIGNIFICANCE = 2.0
#: The values tried, per strategy and parameter; the strategy's own value is always tried too.
#: The co-purchase strategies' ``prior`` and ``content_prior`` are in orders.
GRIDS: dict[type[ItemRecommender], dict[str, tuple[float, ...]]] = {
    CoCountContent: {"prior": (0.0, 10.0, 30.0, 100.0), "content_prior": (100.0, 300.0, 1000.0)},
    CoCount: {"prior": (0.0, 10.0, 30.0, 100.0)},
}
#: The cart vectors' values tried (:mod:`crosssell.engine.cart`): ``shrink``, in orders, and
#: ``lift``, the candidates' popularity exponent (the build's own values are tried too).
CART_GRID: dict[str, tuple[float, ...]] = {
    "shrink": (0.0, 5.0, 20.0, 50.0),
    "lift": (0.0, 0.1, 0.3),
}
#: Carts ranked per sparse product.
CART_BLOCK = 1_000


@dataclass(frozen=True)
class Trial:
    """One setting tried and its validation NDCG@10."""

    params: dict[str, float]
    ndcg: float


@dataclass(frozen=True)
class PartTuning:
    """The tuning of one widget's strategy.

    Attributes
    ----------
    strategy
        The tuned strategy's name (``"cocount_content"``, ``"cocount"``, ``"cart"``).
    chosen, defaults
        The chosen values and the strategy's own (before tuning), by parameter.
    ndcg, default_ndcg
        Validation NDCG@10 of the chosen setting and of the defaults.
    queries
        Validation queries asked per setting (products, or carts).
    trials
        Every setting tried, in the order tried (the defaults first).
    seconds
        Time taken (the shared counts included).
    """

    strategy: str
    chosen: dict[str, float]
    defaults: dict[str, float]
    ndcg: float
    default_ndcg: float
    queries: int
    trials: list[Trial]
    seconds: float

    @property
    def changed(self) -> bool:
        """Whether a value other than the default was chosen."""
        return self.chosen != self.defaults

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``Build.metrics["tuning"]``)."""
        return {
            "strategy": self.strategy,
            "chosen": dict(self.chosen),
            "defaults": dict(self.defaults),
            "ndcg@10": round(self.ndcg, 4),
            "default_ndcg@10": round(self.default_ndcg, 4),
            "queries": self.queries,
            "trials": [
                {"params": dict(t.params), "ndcg@10": round(t.ndcg, 4)} for t in self.trials
            ],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Tuning:
    """What a build's tuning chose, and the strategy it serves.

    Attributes
    ----------
    product, cart
        Each widget's tuning, or ``None`` when skipped (``notes`` says why).
    notes
        Why a part was skipped.
    seconds
        Time taken by the whole tuning.
    model
        The strategy to fit and serve: the given one with the chosen values (the given object
        itself when nothing changed).
    fitted
        ``model`` fitted on the split's fitted part (for the offline metrics), or ``None``.
    split
        The split tuned on (the offline metrics' own).
    """

    product: PartTuning | None
    cart: PartTuning | None
    notes: list[str]
    seconds: float
    model: ItemRecommender
    fitted: ItemRecommender | None = None
    split: HoldoutSplit | None = field(default=None, repr=False)

    @property
    def cart_params(self) -> dict[str, float] | None:
        """The cart vectors' chosen ``shrink`` and ``lift`` (``None``: not tuned)."""
        return None if self.cart is None else dict(self.cart.chosen)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``Build.metrics["tuning"]``)."""
        out: dict[str, Any] = {"seconds": round(self.seconds, 3)}
        if self.product is not None:
            out["product"] = self.product.as_dict()
        if self.cart is not None:
            out["cart"] = self.cart.as_dict()
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def tune(
    data: Interactions,
    model: ItemRecommender,
    *,
    split: HoldoutSplit | None = None,
    random_state: int = 42,
    cart_shrink: float = DEFAULT_SHRINK,
    cart_lift: float = DEFAULT_LIFT,
    cart_length: int = DEFAULT_LENGTH,
    max_queries: int = MAX_QUERIES,
    max_carts: int = MAX_CARTS,
    product: bool = True,
    cart: bool = True,
) -> Tuning:
    """Choose the product-page strategy's and the cart's hyperparameters on held-out orders.

    Parameters
    ----------
    data
        Every order of the shop (what the build fits on).
    model
        The strategy the build serves, unfitted: a :class:`~crosssell.engine.blend.Blend` whose
        steps hold a ``cocount_content`` or ``cocount`` step (the first one is tuned), or such a
        strategy itself. Anything else is served untuned (a note says so).
    split
        The held-out split (default: :func:`holdout_split` of ``data`` with ``random_state``,
        the offline metrics' split).
    random_state
        Seed of the split, the query sample and the carts.
    cart_shrink, cart_lift, cart_length
        The cart vectors' default ``shrink`` and ``lift``, and their ``length`` (the build's
        own).
    max_queries, max_carts
        At most this many validation products (queries) and carts, sampled with the seed.
    product, cart
        Tune that widget.

    Returns
    -------
    Tuning
    """
    started = time.perf_counter()
    if split is None:
        split = holdout_split(data, random_state=random_state)
    notes: list[str] = []
    product_part: PartTuning | None = None
    cart_part: PartTuning | None = None
    tuned, fitted = model, None
    if split is None:
        notes.append("too few orders to hold any out: nothing tuned")
    else:
        cocounts = None
        if product:
            outcome = _tune_product(split, model, random_state, max_queries)
            product_part, tuned, fitted = outcome.part, outcome.model, outcome.fitted
            cocounts = outcome.cocounts
            if outcome.note:
                notes.append(outcome.note)
        if cart:
            defaults = {"shrink": float(cart_shrink), "lift": float(cart_lift)}
            cart_part, note = _tune_cart(
                split, defaults, cart_length, random_state, max_carts, cocounts
            )
            if note:
                notes.append(note)
    return Tuning(
        product_part, cart_part, notes, time.perf_counter() - started, tuned, fitted, split
    )


# --- the product page --------------------------------------------------------------------


def tunable_step(model: ItemRecommender) -> tuple[int | None, ItemRecommender] | None:
    """The strategy the tuner tunes in ``model``: ``(step index or None, unfitted instance)``.

    The index is the step's in a :class:`~crosssell.engine.blend.Blend` (``None``: ``model``
    itself is tuned); ``None`` when the tuner knows no step of it.
    """
    if _grid_of(model) is not None:
        return None, model
    if type(model) is not Blend:
        return None
    for pos, spec in enumerate(model.steps):
        est = _instance(spec)
        if est is not None and _grid_of(est) is not None:
            return pos, est
    return None


def with_chosen(model: ItemRecommender, chosen: dict[str, float]) -> ItemRecommender:
    """``model`` with its tuned step (:func:`tunable_step`) given the ``chosen`` values: what a
    build serves once tuned, rebuilt from the values alone (a chord's shards do so from
    ``Build.metrics``). ``model`` itself when nothing is chosen or no step is tunable."""
    found = tunable_step(model) if chosen else None
    if found is None:
        return model
    position, est = found
    if position is None:
        return with_params(est, **chosen)
    assert isinstance(model, Blend)
    steps = list(model.steps)
    steps[position] = with_params(est, **chosen)
    return Blend(steps=steps, limits=model.limits)


def with_params(est: ItemRecommender, **params: Any) -> ItemRecommender:
    """A new unfitted ``est`` of the same class and parameters, ``params`` overriding them."""
    names = [p for p in inspect.signature(type(est).__init__).parameters if p != "self"]
    current = {name: getattr(est, name) for name in names if hasattr(est, name)}
    made: ItemRecommender = type(est)(**{**current, **params})
    return made


def _grid_of(est: ItemRecommender) -> dict[str, tuple[float, ...]] | None:
    return GRIDS.get(type(est))  # exact class: a subclass may score otherwise


def _instance(spec: StepSpec) -> ItemRecommender | None:
    """A blend step as an unfitted instance (``None`` if it cannot be built here)."""
    if isinstance(spec, ItemRecommender):
        return spec
    from crosssell.engine.registry import build_strategy

    try:
        if isinstance(spec, tuple):
            est = build_strategy(spec[0], **spec[1])
        else:
            est = build_strategy(spec)
    except (KeyError, ImportError, TypeError, ValueError):
        return None
    return est if isinstance(est, ItemRecommender) else None


class _Fitted(ItemRecommender):
    """A strategy fitted already, which a blend's ``fit`` leaves as it is."""

    def __init__(self, fitted: ItemRecommender) -> None:
        self.fitted = fitted
        self.private_below_ = int(getattr(fitted, "private_below_", 0))

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.fitted.name

    def fit(self, data: Interactions) -> _Fitted:
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return self.fitted.similar_items(items, k)

    def recommend_basket(self, basket: npt.ArrayLike, k: int) -> TopK:
        return self.fitted.recommend_basket(basket, k)


class _Scorer:
    """The expensive part of one strategy's fit, re-scored for the validation products.

    ``cocounts`` (``CoCount`` only) are the training part's exact co-counts, the diagonal the
    items' own counts: the cart's validation reads them too.
    """

    def __init__(self, est: ItemRecommender, train: Interactions, rows: IntArray) -> None:
        self.est = est
        self.train = train
        self.rows = rows
        self.parts: CoCountContentParts | None = None
        self.cocounts: sp.csr_matrix | None = None
        self.pop = column_counts(train.baskets)
        if isinstance(est, CoCountContent):
            self.parts = est.fit_parts(train)
        else:
            self.cocounts = cooccurrence_counts(train.baskets)
            self.counts = _off_diagonal(self.cocounts)
            self.counts_rows = self.counts[rows]

    def top(self, params: dict[str, float], k: int) -> IntArray:
        """The ``k`` best companions of each of ``rows`` under ``params`` (``-1``: none)."""
        est = with_params(self.est, **params)
        if self.parts is not None and isinstance(est, CoCountContent):
            S = self.parts.scores(
                est.prior, est.content_prior, est.category_weight, est.max_neighbours, self.rows
            )
            return top_per_row(S, k)
        assert isinstance(est, CoCount)
        rowwise = est.fit_counts(self.counts_rows, self.pop, self.train.n_orders)
        return top_per_row(rowwise.cooc_, k)

    def fitted(self, params: dict[str, float]) -> ItemRecommender:
        """The strategy under ``params``, fitted on the training part from the shared parts."""
        est = with_params(self.est, **params)
        if self.parts is not None and isinstance(est, CoCountContent):
            return est.fit_parts_into(self.parts)
        assert isinstance(est, CoCount)
        return est.fit_counts(self.counts, self.pop, self.train.n_orders)


def _off_diagonal(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Integer co-counts as float64, the diagonal removed (what ``CoCount`` counts)."""
    C = sp.csr_matrix(counts, dtype=np.float64, copy=True)  # its own indices: pruned below
    C.data[C.indices == np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))] = 0
    C.eliminate_zeros()
    return C


def top_per_row(S: sp.csr_matrix, k: int) -> IntArray:
    """Each row's ``k`` largest positive entries, best first, ties by the smaller column
    (:func:`~crosssell.engine.base.topk_rows` with no item of its own), ``-1`` padded.

    A long row is first cut to the entries at least its ``k``-th largest value (a partition,
    not a sort): the same lists, several times faster on the rows of best sellers.
    """
    out = np.full((S.shape[0], k), -1, dtype=np.int64)
    for r in range(S.shape[0]):
        a, b = S.indptr[r], S.indptr[r + 1]
        cols, vals = S.indices[a:b], S.data[a:b]
        keep = vals > 0
        cols, vals = cols[keep], vals[keep]
        if len(vals) > 4 * k:
            kth = np.partition(vals, len(vals) - k)[len(vals) - k]
            keep = vals >= kth
            cols, vals = cols[keep], vals[keep]
        order = np.lexsort((cols, -vals))[:k]
        out[r, : len(order)] = cols[order]
    return out


def _grid(grid: dict[str, tuple[float, ...]], defaults: dict[str, float]) -> list[dict[str, float]]:
    """Every setting of ``grid`` (each axis with its default value added), the defaults first."""
    axes = [sorted({*values, defaults[name]}) for name, values in grid.items()]
    settings = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*axes)]
    settings.sort(key=lambda s: s != defaults)  # stable: the defaults first
    return settings


def _settings(est: ItemRecommender) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The strategy's own values and the grid's settings, the defaults first."""
    grid = _grid_of(est) or {}
    defaults = {name: float(getattr(est, name)) for name in grid}
    settings = _grid(grid, defaults)
    if isinstance(est, CoCountContent):
        # with no content prior its own prior weighs nothing: one setting is enough
        settings = [
            s for s in settings if s["prior"] or s["content_prior"] == defaults["content_prior"]
        ]
    return defaults, settings


class _ProductOutcome(NamedTuple):
    part: PartTuning | None
    model: ItemRecommender
    fitted: ItemRecommender | None
    note: str = ""
    cocounts: sp.csr_matrix | None = None


def _tune_product(
    split: HoldoutSplit, model: ItemRecommender, random_state: int, max_queries: int
) -> _ProductOutcome:
    started = time.perf_counter()
    found = tunable_step(model)
    if found is None:
        name = getattr(model, "name", type(model).__name__)
        return _ProductOutcome(
            None, model, None, f"product page: {name} is not a strategy the tuner knows"
        )
    position, est = found
    queries = _sample(split.queries, max_queries, random_state)
    if len(queries) < MIN_QUERIES:
        return _ProductOutcome(
            None,
            model,
            None,
            f"product page: {len(queries)} validation queries, fewer than {MIN_QUERIES}: "
            "the defaults stay",
        )
    orders = np.asarray([r for r, _ in queries], dtype=np.int64)
    asked = np.asarray([q for _, q in queries], dtype=np.int64)
    products, at = np.unique(asked, return_inverse=True)
    n_items = split.train.n_items
    head = Popularity(include_unsold=True).fit(split.train).order_[: 2 * K + 1]
    own = np.arange(len(products), dtype=np.int64) * n_items + products
    scorer = _Scorer(est, split.train, products)
    defaults, settings = _settings(est)
    X = split.data.baskets
    n_relevant = np.diff(X.indptr)[orders] - 1
    per_query = []
    for params in settings:
        lists = _filled(scorer.top(params, K), head, own, n_items)[at]
        per_query.append(ndcg(_hits(X, orders, lists), n_relevant))
    trials = [Trial(p, float(v.mean())) for p, v in zip(settings, per_query, strict=True)]
    best = trials[_choose(per_query)]
    changed = best.params != defaults
    chosen = scorer.fitted(best.params)
    tuned = with_chosen(model, best.params) if changed else model
    fitted: ItemRecommender = chosen
    if position is not None:
        assert isinstance(model, Blend) and isinstance(tuned, Blend)
        steps = list(tuned.steps)
        # the other steps fitted on the training part (copies: the served ones stay unfitted)
        held = [copy.deepcopy(s) if isinstance(s, ItemRecommender) else s for s in steps]
        held[position] = _Fitted(chosen)
        fitted = Blend(steps=held, limits=model.limits).fit(split.train)
    part = PartTuning(
        est.name,
        dict(best.params),
        defaults,
        best.ndcg,
        trials[0].ndcg,
        len(queries),
        trials,
        time.perf_counter() - started,
    )
    return _ProductOutcome(part, tuned, fitted, "", scorer.cocounts)


def _choose(per_query: list[npt.NDArray[np.float64]]) -> int:
    """The setting served: the best mean NDCG if its gain over the defaults (the first) is
    more than :data:`SIGNIFICANCE` standard errors of the paired per-query differences, else
    the defaults. On a small shop a noisy winner is no reason to leave them."""
    means = [float(v.mean()) for v in per_query]
    best = int(np.argmax(means))  # the first of equals: the defaults
    if best == 0:
        return 0
    gain = per_query[best] - per_query[0]
    error = float(gain.std(ddof=1)) / np.sqrt(len(gain)) if len(gain) > 1 else np.inf
    return best if float(gain.mean()) > SIGNIFICANCE * error else 0


def _sample(queries: Sequence[tuple[int, int]], n: int, random_state: int) -> list[tuple[int, int]]:
    """At most ``n`` of ``queries``, in their order, drawn with the seed."""
    if len(queries) <= n:
        return list(queries)
    pick = np.random.default_rng(random_state).choice(len(queries), size=n, replace=False)
    return [queries[i] for i in np.sort(pick).tolist()]


def _filled(top: IntArray, head: IntArray, excluded: IntArray, n_items: int) -> IntArray:
    """Each row of ``top``, then the bestsellers ``head``: ``K`` distinct items per row,
    none of the row's ``excluded`` (sorted keys ``row * n_items + item``; the query's own
    items), as the blend's popularity floor and the cart's bestsellers fill a list."""
    n = len(top)
    cand = np.hstack([top, np.broadcast_to(head, (n, len(head)))])
    keys = np.arange(n, dtype=np.int64)[:, None] * n_items + cand
    ok = (cand >= 0) & ~np.isin(keys, excluded)
    # a bestseller the row already holds is no new slot
    ok[:, top.shape[1] :] &= ~(head[None, :, None] == top[:, None, :]).any(axis=2)
    order = np.argsort(~ok, axis=1, kind="stable")[:, :K]
    out = np.take_along_axis(cand, order, axis=1)
    return np.where(np.take_along_axis(ok, order, axis=1), out, -1)


def _hits(X: sp.csr_matrix, orders: IntArray, lists: IntArray) -> npt.NDArray[np.bool_]:
    """Whether each listed item is in the query's order (``lists`` row ``n`` is query ``n``)."""
    n_items = X.shape[1]
    sub = X[np.unique(orders)]
    rows = np.repeat(np.unique(orders), np.diff(sub.indptr))
    keys = rows * n_items + sub.indices
    keys.sort()
    asked = orders[:, None] * n_items + lists
    return np.isin(asked, keys) & (lists >= 0)


# --- the cart ----------------------------------------------------------------------------


def _carts(
    split: HoldoutSplit, max_carts: int, random_state: int
) -> tuple[list[IntArray], list[IntArray]]:
    """CART-v1's carts of the held-out orders: baskets of at least 3 products that sold in the
    fitted part, each shuffled, its first half the cart and the rest relevant."""
    held = np.flatnonzero(split.held_out)
    # the held-out baskets, their products that sold in the fitted part only (sorted)
    H = sp.csr_matrix(split.data.baskets[held])
    H = sp.csr_matrix(H @ sp.diags((split.train.baskets.getnnz(axis=0) > 0).astype(H.dtype)))
    H.eliminate_zeros()
    H.sort_indices()
    big = np.flatnonzero(np.diff(H.indptr) >= 3)
    baskets = [H.indices[H.indptr[r] : H.indptr[r + 1]].astype(np.int64) for r in big.tolist()]
    rng = np.random.default_rng(random_state)
    if len(baskets) > max_carts:
        pick = np.sort(rng.choice(len(baskets), size=max_carts, replace=False))
        baskets = [baskets[i] for i in pick.tolist()]
    carts, rest = [], []
    for items in baskets:
        shuffled = rng.permutation(items)
        h = len(items) // 2
        carts.append(np.sort(shuffled[:h]))
        rest.append(shuffled[h:])
    return carts, rest


def count_rows(M: sp.csr_matrix, rows: IntArray) -> sp.csr_matrix:
    """``M.T @ M`` of binary rows, exact integers, only ``rows`` filled (the others empty).

    Laid out as the whole ``items x items`` matrix, its diagonal the items' own counts, as
    :func:`~crosssell.engine.cart.cart_vectors` reads it.
    """
    B = binary_counts_matrix(M)
    part = sp.csr_matrix(B.T.tocsr()[rows] @ B)
    part.sort_indices()
    n = M.shape[1]
    sizes = np.zeros(n + 1, dtype=np.int64)
    sizes[rows + 1] = np.diff(part.indptr)
    return sp.csr_matrix((part.data, part.indices, np.cumsum(sizes)), shape=(n, n))


def _tune_cart(
    split: HoldoutSplit,
    defaults: dict[str, float],
    length: int,
    random_state: int,
    max_carts: int,
    cocounts: sp.csr_matrix | None = None,
) -> tuple[PartTuning | None, str]:
    started = time.perf_counter()
    carts, rest = _carts(split, max_carts, random_state)
    if len(carts) < MIN_CARTS:
        note = f"cart: {len(carts)} validation carts, fewer than {MIN_CARTS}: the defaults stay"
        return None, note
    train = split.train
    items = np.unique(np.concatenate(carts))
    # the training part's co-counts (those the product page counted, when it did)
    orders = cocounts if cocounts is not None else count_rows(train.baskets, items)
    count = column_counts(train.baskets)  # orders holding each item (orders: some rows only)
    # The privacy threshold as the orders say it: a pair in fewer orders has fewer customers
    # too (the build counts customers exactly; over a tenth fewer orders, near enough here).
    threshold = privacy_threshold(train)
    n_items = train.n_items
    longest = max(len(c) for c in carts)
    head = Popularity(include_unsold=True).fit(train).order_[: 2 * K + longest]
    n_relevant = np.asarray([len(r) for r in rest], dtype=np.int64)
    row_of = np.repeat(np.arange(len(carts), dtype=np.int64), [len(c) for c in carts])
    in_cart = np.sort(row_of * n_items + np.concatenate(carts))
    relevant = np.sort(
        np.repeat(np.arange(len(carts), dtype=np.int64), n_relevant) * n_items
        + np.concatenate(rest)
    )
    settings = _grid(CART_GRID, defaults)
    per_cart: dict[tuple[float, float], npt.NDArray[np.float64]] = {}
    for lift in sorted({s["lift"] for s in settings}):
        # the terms a vector keeps depend on the lift, not on the shrink (the same for a row)
        base = cart_vectors(
            orders,
            orders if threshold > 1 else None,
            items=items,
            shrink=defaults["shrink"],
            length=length,
            lift=lift,
            min_customers=threshold,
            item_counts=count,
        )
        at = np.repeat(items, np.diff(base.indptr))
        co = lookup_pairs(orders, at, base.dst)
        for shrink in sorted({s["shrink"] for s in settings if s["lift"] == lift}):
            weight = vector_weights(co, count[at], shrink, count[base.dst], lift)
            vectors = replace(base, weight=weight, shrink=shrink)
            shown = _filled(_cart_top(vectors, carts, in_cart, n_items), head, in_cart, n_items)
            keys = np.arange(len(carts), dtype=np.int64)[:, None] * n_items + shown
            hits = np.isin(keys, relevant) & (shown >= 0)
            per_cart[(shrink, lift)] = ndcg(hits, n_relevant)
    scores = [per_cart[(s["shrink"], s["lift"])] for s in settings]
    trials = [Trial(p, float(v.mean())) for p, v in zip(settings, scores, strict=True)]
    best = trials[_choose(scores)]
    part = PartTuning(
        "cart",
        dict(best.params),
        dict(defaults),
        best.ndcg,
        trials[0].ndcg,
        len(carts),
        trials,
        time.perf_counter() - started,
    )
    return part, ""


def _cart_top(
    vectors: CartVectors, carts: list[IntArray], in_cart: IntArray, n_items: int
) -> IntArray:
    """Each cart's ``K`` best candidates from its products' vectors, as
    :func:`~crosssell.engine.cart.score_cart` ranks them (weights summed in float64 in
    ascending order of the products, the cart's own products out, ties by the smaller id),
    for many carts at once: one sparse product per block of carts."""
    sizes = np.diff(vectors.indptr)
    V = sp.csr_matrix(
        (vectors.weight.astype(np.float64), vectors.dst, vectors.indptr),
        shape=(len(vectors.items), n_items),
    )
    out = np.full((len(carts), K), -1, dtype=np.int64)
    for start in range(0, len(carts), CART_BLOCK):
        block = carts[start : start + CART_BLOCK]
        cols = np.searchsorted(vectors.items, np.concatenate(block))
        indptr = np.r_[0, np.cumsum([len(c) for c in block])]
        A = sp.csr_matrix(
            (np.ones(len(cols)), cols, indptr), shape=(len(block), len(vectors.items))
        )
        A.data[sizes[cols] == 0] = 0  # a product with no vector adds nothing
        S = sp.csr_matrix(A @ V)
        rows = np.repeat(np.arange(len(block), dtype=np.int64), np.diff(S.indptr))
        S.data[np.isin((rows + start) * n_items + S.indices, in_cart)] = 0
        S.eliminate_zeros()
        out[start : start + len(block)] = top_per_row(S, K)
    return out


__all__ = [
    "CART_GRID",
    "GRIDS",
    "MAX_CARTS",
    "MAX_QUERIES",
    "MIN_CARTS",
    "MIN_QUERIES",
    "PartTuning",
    "Trial",
    "Tuning",
    "count_rows",
    "tunable_step",
    "tune",
    "with_params",
]
