"""CART-v1: "you may also need" for a cart (PROTOCOL.md), its peers and the cart strategies.

The split, the training matrix and the known products are FBT-v1's. Each test basket with at
least 3 distinct known products (baskets in order of first appearance in the file, products in
order of first appearance in the basket) is shuffled with one ``numpy.random.default_rng(42)``;
its first ``n // 2`` products are the cart, the rest are relevant. A strategy ranks products for
the cart; the first 10 not in the cart are kept, empty slots filled with training popularity.

The peers follow ``cart_eval.py`` (same sums in the same order, same ties). ``served`` is what
the cart widget does (:func:`crosssell.services.serving.ranked_slots`): a cart of several
products sums their stored cart vectors (:mod:`crosssell.engine.cart`, the same functions with
the same shrink, length and privacy threshold as a build), a one-product cart shows that
product's stored list (the default strategy's, ranked as a build ranks it); the ``cart-*`` rows
are candidates, ``cart-fused-lists`` what the widget served before the vectors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import IntArray, ItemRecommender
from crosssell.engine.cart import (
    DEFAULT_LENGTH,
    DEFAULT_LIFT,
    DEFAULT_SHRINK,
    CartVectors,
    cart_vectors,
    score_cart,
)
from crosssell.engine.evaluation import metrics
from crosssell.engine.evaluation.data import Catalog, PurchaseLog
from crosssell.engine.evaluation.fbt import (
    SEED,
    FBTSplit,
    _orders_in_first_appearance,
    fbt_split,
    split_orders,
)

if TYPE_CHECKING:
    from crosssell.engine.ranking import EvidenceCounts
from crosssell.engine.registry import FALLBACK_STRATEGIES

K = 10
MIN_BASKET = 3
#: ``cart_eval.dense_top``: candidates kept per cart before the cart's own items are removed.
TOP = 4 * K
#: The peer's fused lists: 12 co-count companions per product, reciprocal rank with k = 60.
PEER_LIST_LENGTH = 12
PEER_RRF_K = 60
#: The served cart (crosssell.services.serving): CROSSSELL_LIST_LENGTH, RRF_K, FALLBACK_WEIGHT
#: (a one-product cart's list, and the fusion of a build without cart vectors), the cart
#: vectors' defaults and CROSSSELL_MIN_CUSTOMERS's default (the privacy threshold).
SERVED_MIN_CUSTOMERS = 3
SERVED_SHRINK = DEFAULT_SHRINK
SERVED_LIFT = DEFAULT_LIFT
SERVED_LENGTH = DEFAULT_LENGTH
SERVED_LIST_LENGTH = 12
SERVED_RRF_K = 5
SERVED_FALLBACK_WEIGHT = 0.2
SERVED_FALLBACKS = FALLBACK_STRATEGIES  # the served rule itself (crosssell.engine.registry)
#: ``cart-shrunk-conditional``'s prior, in orders: best of 0, 2, 5, 10, 20, 50 on the CART-v1
#: validation carts carved from the training orders (summed gain over both data sets).
SHRINK = 20.0
CHUNK = 512
#: ``cart-vectors-lift``: the served cart with a stronger popularity penalty, the best of shrink
#: 10/20/50/100 x lift 0-0.4 on instacart's validation carts (``benchmarks/tune_cart.py``).
LIFTED_SHRINK = 20.0
LIFTED_LIFT = 0.3

Ranked = list[IntArray]


@dataclass(frozen=True)
class CartSplit:
    """The CART-v1 carts on top of one FBT-v1 split.

    Attributes
    ----------
    fbt
        The FBT-v1 split (training interactions, item ids).
    carts
        Per cart, its item indices in the shuffled order (the first ``n // 2``).
    relevant
        Per cart, the rest of the basket (item indices, shuffled order).
    """

    fbt: FBTSplit
    carts: list[IntArray]
    relevant: list[IntArray]


def cart_split(log: PurchaseLog, catalog: Catalog | None = None) -> CartSplit:
    """Build the CART-v1 carts of a purchase log (``cart_eval.carts_of``)."""
    fbt = fbt_split(log, catalog)
    items = np.asarray(fbt.items, dtype=str)
    n = len(items)
    line_order, _, _ = _orders_in_first_appearance(log)
    test_lines = np.flatnonzero(split_orders(log)[line_order])
    order = line_order[test_lines]
    prod = log.product_ids[test_lines]
    pos = np.searchsorted(items, prod).clip(max=max(n - 1, 0))
    known = (items[pos] == prod) if n else np.zeros(len(prod), dtype=bool)
    order, item = order[known].astype(np.int64), pos[known].astype(np.int64)
    # distinct products, first occurrence, still in file order
    _, first = np.unique(order * max(n, 1) + item, return_index=True)
    first.sort()
    order, item = order[first], item[first]
    # baskets by first appearance; within one, products in file order (stable sort)
    by = np.argsort(order, kind="stable")
    order, item = order[by], item[by]
    bounds = np.flatnonzero(np.r_[True, np.diff(order) != 0, True])
    rng = np.random.default_rng(SEED)
    carts: list[IntArray] = []
    relevant: list[IntArray] = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if b - a < MIN_BASKET:
            continue
        shuffled = rng.permutation(item[a:b])
        h = (b - a) // 2
        carts.append(shuffled[:h])
        relevant.append(shuffled[h:])
    return CartSplit(fbt, carts, relevant)


def cocounts(X: sp.csr_matrix) -> sp.csr_matrix:
    """``cart_eval``'s ``C``: item x item co-purchase counts, zero diagonal."""
    C = (X.T @ X).tocsr()
    C.setdiag(0)
    C.eliminate_zeros()
    return C


def conditional(C: sp.csr_matrix, pop: npt.NDArray[np.floating]) -> sp.csr_matrix:
    """Row ``q``: ``P(c | q) = count(q, c) / count(q)`` (``cart_eval``'s ``P``)."""
    return (sp.diags(1 / np.maximum(pop, 1)) @ C).tocsr()


def shrunk_conditional(
    C: sp.csr_matrix, pop: npt.NDArray[np.floating], prior: float = SHRINK
) -> sp.csr_matrix:
    """Row ``q``: ``count(q, c) / (count(q) + prior)``.

    ``P(c | q)`` shrunk toward 0: a product bought a handful of times no longer speaks as
    loudly for the cart as a staple whose conditional rests on thousands of orders.
    """
    scale = (1 / (np.asarray(pop, dtype=np.float64) + prior)).astype(np.float32)
    return (sp.diags(scale) @ C).tocsr()


def summed_top(M: sp.csr_matrix, carts: list[IntArray], top: int = TOP) -> Ranked:
    """Per cart, the ``top`` columns of the sum of ``M``'s cart rows, best first.

    The rows are added in cart order and the ties broken as ``cart_eval.dense_top`` does
    (argpartition over the non-zero columns, then a stable sort), so the peers' lists are
    reproduced exactly; carts go through in chunks of sparse products, never a dense matrix.
    """
    out: Ranked = []
    dtype = M.dtype
    for start in range(0, len(carts), CHUNK):
        part = carts[start : start + CHUNK]
        indptr = np.r_[0, np.cumsum([len(c) for c in part])].astype(np.int64)
        indices = np.concatenate(part) if part else np.empty(0, np.int64)
        # indices in cart order (not sorted): the product then adds rows in that order
        A = sp.csr_matrix(
            (np.ones(len(indices), dtype=dtype), indices, indptr), shape=(len(part), M.shape[0])
        )
        S = (A @ M).tocsr()
        S.sort_indices()
        for r in range(S.shape[0]):
            a, b = S.indptr[r], S.indptr[r + 1]
            idx, val = S.indices[a:b], S.data[a:b]
            keep = val != 0
            idx, val = idx[keep], val[keep]
            if len(idx) > top:
                sel = np.argpartition(-val, top)[:top]
                idx, val = idx[sel], val[sel]
            out.append(idx[np.argsort(-val, kind="stable")].astype(np.int64))
    return out


def fused_lists(
    lists: dict[int, list[int]],
    carts: list[IntArray],
    rrf_k: int,
    weights: dict[int, list[float]] | None = None,
    by_rank: bool = False,
) -> Ranked:
    """Per cart, its products' lists fused by reciprocal rank: ``sum w / (rrf_k + rank)``.

    ``lists[q]`` is product ``q``'s list (rank 0 first). Ties keep the order in which products
    were first met: ``cart_eval`` walks product by product, the served path rank by rank over
    the sorted sources (``by_rank``). A 1-product cart keeps its list's order (as served).
    """
    out: Ranked = []
    for cart in carts:
        sc: dict[int, float] = {}
        cs = set(cart.tolist())
        qs = sorted(cs) if by_rank else cart.tolist()
        if by_rank:
            length = max((len(lists[q]) for q in qs), default=0)
            walk = [(q, r) for r in range(length) for q in qs if r < len(lists[q])]
        else:
            walk = [(q, r) for q in qs for r in range(len(lists[q]))]
        for q, r in walk:
            j = lists[q][r]
            if by_rank and j in cs:
                continue  # the served path skips the cart's own products
            w = weights[q][r] if weights is not None else 1.0
            # cart_eval counts from rank 1 (1 / (k + r + 1)); the stored ranks start at 0
            sc[j] = sc.get(j, 0.0) + w / (rrf_k + r + (0 if by_rank else 1))
        if by_rank and len(qs) == 1:
            out.append(np.asarray(list(sc), dtype=np.int64))
        else:
            out.append(np.asarray(sorted(sc, key=lambda j: -sc[j]), dtype=np.int64))
    return out


def top_lists(C: sp.csr_matrix, items: list[int], length: int) -> dict[int, list[int]]:
    """Each item's ``length`` best co-count companions (stable sort of its stored row)."""
    out: dict[int, list[int]] = {}
    for q in items:
        a, b = C.indptr[q], C.indptr[q + 1]
        order = np.argsort(-C.data[a:b], kind="stable")[:length]
        out[q] = C.indices[a:b][order].tolist()
    return out


def finish(
    ranked: Ranked, split: CartSplit, pop_order: IntArray, k: int = K
) -> npt.NDArray[np.int64]:
    """The ``k`` products shown per cart: ranked ones not in the cart, then popularity."""
    out = np.full((len(split.carts), k), -1, dtype=np.int64)
    head = pop_order[: 2 * k + 200].tolist()
    for i, (cart, cand) in enumerate(zip(split.carts, ranked, strict=True)):
        cs = set(cart.tolist())
        row: list[int] = []
        seen = set(cs)
        for j in [*cand.tolist(), *head]:
            if len(row) >= k:
                break
            if j not in seen:
                row.append(j)
                seen.add(j)
        if len(row) < k:  # a cart larger than the popularity head
            row += [j for j in pop_order.tolist() if j not in seen][: k - len(row)]
        out[i, : len(row)] = row
    return out


def score(shown: npt.NDArray[np.int64], split: CartSplit) -> dict[str, float]:
    """HR@10 and NDCG@10 (binary, ideal DCG over min(|relevant|, 10)), mean over carts."""
    if not split.carts:
        nan = float("nan")
        return {"hr@10": nan, "recall@10": nan, "ndcg@10": nan, "queries": 0}
    hits = np.array(
        [np.isin(row, rel) for row, rel in zip(shown, split.relevant, strict=True)], dtype=bool
    )
    n_rel = np.array([len(r) for r in split.relevant], dtype=np.int64)
    return {
        "hr@10": float(metrics.hit_rate(hits).mean()),
        "recall@10": float(metrics.recall_capped(hits, n_rel).mean()),
        "ndcg@10": float(metrics.ndcg(hits, n_rel).mean()),
        "queries": len(split.carts),
    }


class CartContext:
    """What the cart strategies share: co-counts, ``P(c | q)``, popularity, the default fit."""

    def __init__(
        self, split: CartSplit, build_default: Callable[[], ItemRecommender] | None = None
    ) -> None:
        X = split.fbt.train.baskets
        self.split = split
        self.pop = np.asarray(X.sum(0)).ravel()
        self.pop_order: IntArray = np.argsort(-self.pop, kind="stable").astype(np.int64)
        self.C = cocounts(X)
        self.P = conditional(self.C, self.pop)
        self.cart_items = sorted({int(i) for c in split.carts for i in c.tolist()})
        self._build_default = build_default
        self._default: ItemRecommender | None = None
        self._served_default: ItemRecommender | None = None
        self._counts: EvidenceCounts | None = None
        self._vectors: dict[tuple[float, float, int], CartVectors] = {}

    def _new_default(self) -> ItemRecommender:
        """An unfitted default FBT strategy."""
        if self._build_default is not None:
            return self._build_default()
        from crosssell.engine.registry import DEFAULT_STRATEGY, build_strategy

        est = build_strategy(DEFAULT_STRATEGY)
        if not isinstance(est, ItemRecommender):
            raise TypeError("the default strategy is not an item recommender")
        return est

    def default(self) -> ItemRecommender:
        """The default FBT strategy, fitted once on the training part."""
        if self._default is None:
            self._default = self._new_default().fit(self.split.fbt.train)
        return self._default

    def counts(self) -> EvidenceCounts:
        """The training part's exact co-counts over orders and customers, as a build keeps them
        (:class:`~crosssell.engine.ranking.EvidenceCounts`), counted once."""
        if self._counts is None:
            from crosssell.engine.ranking import EvidenceCounts

            self._counts = EvidenceCounts(self.split.fbt.train)
        return self._counts

    def served_vectors(
        self, shrink: float = SERVED_SHRINK, lift: float = SERVED_LIFT, length: int = SERVED_LENGTH
    ) -> CartVectors:
        """Every item's cart vector as a build stores it (:func:`cart_vectors` of the build's
        co-counts under the privacy threshold; the served shrink, lift and length by default),
        computed once per setting."""
        key = (float(shrink), float(lift), int(length))
        if key not in self._vectors:
            counts = self.counts()
            self._vectors[key] = cart_vectors(
                counts.orders.matrix(),
                counts.customers.matrix(),
                shrink=shrink,
                length=length,
                lift=lift,
                min_customers=SERVED_MIN_CUSTOMERS,
            )
        return self._vectors[key]

    def served_lists(self, items: list[int]) -> tuple[dict[int, list[int]], dict[int, list[float]]]:
        """The stored lists of ``items`` as a build ranks them (:func:`compute_rows`: the default
        strategy fitted under the privacy threshold, its pairs below it dropped, bestsellers
        filling), and each slot's weight in a fused cart (a fallback strategy's weighs less)."""
        from crosssell.engine.evidence import MIN_CUSTOMERS_KEY
        from crosssell.engine.ranking import compute_rows
        from crosssell.engine.registry import FALLBACK_STRATEGIES

        lists: dict[int, list[int]] = {q: [] for q in items}
        weights: dict[int, list[float]] = {q: [] for q in items}
        if not items:
            return lists, weights
        counts = self.counts()
        data = counts.data
        if self._served_default is None:
            # a copy of the training data whose fit applies the threshold, as a build's does
            est = self._new_default()
            censored = replace(data, extra={**data.extra, MIN_CUSTOMERS_KEY: SERVED_MIN_CUSTOMERS})
            self._served_default = est.fit(censored)
        rows = compute_rows(
            data,
            self._served_default,
            SERVED_LIST_LENGTH,
            SERVED_MIN_CUSTOMERS,
            items=np.asarray(items, dtype=np.int64),
            counts=counts,
        )
        for q, c, label in zip(rows.src.tolist(), rows.dst.tolist(), rows.strategy, strict=True):
            lists[q].append(c)  # grouped by source, ranks in order
            weights[q].append(SERVED_FALLBACK_WEIGHT if label in FALLBACK_STRATEGIES else 1.0)
        return lists, weights

    def default_conditional(self) -> sp.csr_matrix:
        """The default strategy's own ``P(c | q)`` estimate, from its full score rows.

        ``cocount_content`` scores ``count(q, c) + m Q(c | q)``; divided by ``count(q) + m`` it
        is the Bayesian estimate of ``P(c | q)`` under the content prior. Falls back to its
        first step's scores, row-normalised, for a default without ``prior``.
        """
        est = self.default()
        inner = getattr(est, "estimators_", [est])[0]
        S = getattr(inner, "scores_", None)
        if not sp.issparse(S):
            raise TypeError("the default strategy keeps no sparse score matrix")
        S = sp.csr_matrix(S, dtype=np.float32)
        m = float(getattr(inner, "prior", 0.0))
        denom = self.pop + m if m > 0 else np.asarray(S.sum(axis=1)).ravel()
        return (sp.diags((1 / np.maximum(denom, 1e-12)).astype(np.float32)) @ S).tocsr()


def _served(ctx: CartContext, **vector_parameters: Any) -> Ranked:
    """The widget today: summed cart vectors; a one-product cart (or one whose products have
    no vector: none was bought together often enough) gets its stored lists, fused by rank.
    ``vector_parameters`` (shrink, lift, length) replace the served ones (a candidate)."""
    vectors = ctx.served_vectors(**vector_parameters).parts()
    out: Ranked = []
    need = sorted(
        {
            int(q)
            for c in ctx.split.carts
            if len(c) == 1 or not any(int(q) in vectors for q in c.tolist())
            for q in c.tolist()
        }
    )
    lists, weights = ctx.served_lists(need)
    for cart in ctx.split.carts:
        sources = sorted(int(q) for q in cart.tolist())
        parts = [vectors[q] for q in sources if q in vectors]
        if len(sources) > 1 and parts:
            out.append(score_cart(parts, sources, TOP)[0])
        else:  # ranked_slots: one source keeps its list's order, several are fused
            out.append(fused_lists(lists, [cart], SERVED_RRF_K, weights, by_rank=True)[0])
    return out


def _fused_stored_lists(ctx: CartContext) -> Ranked:
    """What the widget served before the cart vectors: each cart product's stored list fused
    by reciprocal rank (a bestseller slot weighing less), the default strategy unthresholded."""
    est = ctx.default()
    items = np.asarray(ctx.cart_items, dtype=np.int64)
    got = est.similar_items(items, SERVED_LIST_LENGTH)
    names = got.source_names
    lists: dict[int, list[int]] = {}
    weights: dict[int, list[float]] = {}
    for pos, q in enumerate(ctx.cart_items):
        row = got.indices[pos]
        ok = row >= 0
        lists[q] = row[ok].tolist()
        src = got.sources[pos][ok].tolist() if got.sources is not None else [-1] * int(ok.sum())
        weights[q] = [
            SERVED_FALLBACK_WEIGHT if 0 <= s < len(names) and names[s] in SERVED_FALLBACKS else 1.0
            for s in src
        ]
    return fused_lists(lists, ctx.split.carts, SERVED_RRF_K, weights, by_rank=True)


def _mix(ctx: CartContext) -> Ranked:
    # the full P(c | q) keeps every companion; the default's estimate adds its content prior
    M = (0.5 * ctx.P + 0.5 * ctx.default_conditional()).tocsr().astype(np.float32)
    return summed_top(M, ctx.split.carts)


#: name -> (peer, default, ranker). Peers first, as ``cart_eval.py`` prints them.
CART_STRATEGIES: dict[str, tuple[bool, bool, Callable[[CartContext], Ranked]]] = {
    "peer-popularity": (
        True,
        False,
        lambda ctx: [ctx.pop_order[: K + len(c)] for c in ctx.split.carts],
    ),
    "peer-sum-cocount": (True, False, lambda ctx: summed_top(ctx.C, ctx.split.carts)),
    "peer-sum-conditional": (True, False, lambda ctx: summed_top(ctx.P, ctx.split.carts)),
    "peer-rrf12": (
        True,
        False,
        lambda ctx: fused_lists(
            top_lists(ctx.C, ctx.cart_items, PEER_LIST_LENGTH), ctx.split.carts, PEER_RRF_K
        ),
    ),
    "served": (False, True, _served),
    "cart-vectors-lift": (
        False,
        False,
        lambda ctx: _served(ctx, shrink=LIFTED_SHRINK, lift=LIFTED_LIFT),
    ),
    "cart-fused-lists": (False, False, _fused_stored_lists),
    "cart-sum-conditional": (False, False, lambda ctx: summed_top(ctx.P, ctx.split.carts)),
    "cart-shrunk-conditional": (
        False,
        False,
        lambda ctx: summed_top(shrunk_conditional(ctx.C, ctx.pop), ctx.split.carts),
    ),
    "cart-default-conditional": (
        False,
        False,
        lambda ctx: summed_top(ctx.default_conditional(), ctx.split.carts),
    ),
    "cart-conditional-mix": (False, False, _mix),
}


def evaluate_cart(ctx: CartContext, name: str) -> dict[str, Any]:
    """Score one of :data:`CART_STRATEGIES` under CART-v1.

    Returns
    -------
    dict
        ``hr@10``, ``recall@10`` (hits / min(|relevant|, 10)), ``ndcg@10``, ``queries`` (carts)
        and ``fit_seconds`` (ranking every cart, plus the default's fit the first time).
    """
    if name not in CART_STRATEGIES:
        raise ValueError(
            f"unknown cart strategy {name!r}; choose from {', '.join(CART_STRATEGIES)}"
        )
    t0 = time.perf_counter()
    ranked = CART_STRATEGIES[name][2](ctx)
    shown = finish(ranked, ctx.split, ctx.pop_order)
    seconds = time.perf_counter() - t0
    return {**score(shown, ctx.split), "fit_seconds": seconds}
