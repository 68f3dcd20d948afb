"""Content-based strategies: what the shop says about a product (name, text, category, price).

They serve the products with no sales yet. ``ContentSimilar`` finds look-alikes (TF-IDF cosine);
``ContentCompanions`` answers the question a product page asks, "what goes with it", for a
product nobody bought: the co-purchase companions of its best-selling look-alikes.
``CategoryCompanions`` answers it from the shelf: what the product's category (and each level of
its path) sells with, shrunk level by level toward popularity. Look-alikes are substitutes, not
complements (a new yogurt's companions are not other yogurts only), so the blend serves a cold
product a mixture of the last two (``CoCountContent``).
"""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from crosssell.engine.base import Interactions, ItemContent, ItemRecommender, TopK, topk_rows
from crosssell.engine.evidence import censor_pairs, privacy_threshold
from crosssell.engine.popularity import category_levels
from crosssell.engine.similarity import (
    column_counts,
    l2_normalize_rows,
    scale_rows,
    topk_product,
)


def price_bands(prices: npt.NDArray[np.float64], n_bands: int = 5) -> list[str]:
    """Quantile band of each price as a token (``"price:0"`` cheapest); ``""`` when unknown."""
    known = np.isfinite(prices)
    out = [""] * len(prices)
    if not known.any():
        return out
    edges = np.quantile(prices[known], np.linspace(0, 1, n_bands + 1)[1:-1])
    bands = np.searchsorted(edges, prices[known], side="right")
    for i, b in zip(np.flatnonzero(known).tolist(), bands.tolist(), strict=True):
        out[i] = f"price:{b}"
    return out


def _tokens(doc: str) -> list[str]:
    return doc.split("\t") if doc else []


def item_features(
    content: ItemContent,
    category_weight: float = 1.0,
    price_weight: float = 0.3,
) -> sp.csr_matrix:
    """TF-IDF features of every item, rows L2-normalised.

    Words of the name and text (sublinear TF-IDF) are joined by one token per level of the
    category path (``cat:dairy``, ``cat:dairy>yogurt``: IDF weighs the specific level more) and
    a price band token, each block weighted then the whole row normalised.
    """
    n = len(content.names)
    blocks: list[sp.csr_matrix] = []
    text = [f"{a} {b}".strip() for a, b in zip(content.names, content.texts, strict=True)]
    if any(text):
        vec = TfidfVectorizer(sublinear_tf=True, min_df=1, token_pattern=r"(?u)\b\w+\b")
        blocks.append(sp.csr_matrix(vec.fit_transform(text)))
    attrs = [
        "\t".join([f"cat:{p}" for p in levels] + ([band] if band else []))
        for levels, band in zip(
            category_levels(content.categories), price_bands(content.prices), strict=True
        )
    ]
    if any(attrs):
        vec2 = TfidfVectorizer(analyzer=_tokens, sublinear_tf=True)
        A = sp.csr_matrix(vec2.fit_transform(attrs), dtype=np.float64)
        names = vec2.get_feature_names_out()
        w = np.where(np.char.startswith(names.astype(str), "price:"), price_weight, category_weight)
        A.data *= w[A.indices]
        blocks.append(A)
    if not blocks:
        return sp.csr_matrix((n, 0), dtype=np.float64)
    return l2_normalize_rows(sp.hstack(blocks, format="csr"))


class ContentSimilar(ItemRecommender):
    """Look-alikes: TF-IDF cosine over name, text, category path and price band.

    Parameters
    ----------
    neighbours
        Look-alikes kept per item.
    n_threads
        Threads of the sparse product.
    """

    name = "content_similar"

    def __init__(self, neighbours: int = 50, n_threads: int | None = None) -> None:
        self.neighbours = neighbours
        self.n_threads = n_threads

    def fit(self, data: Interactions) -> Self:
        content = data.content or ItemContent.empty(data.n_items)
        F = item_features(content)
        self.similarity_: sp.csr_matrix = topk_product(
            F, F.T.tocsr(), self.neighbours, n_threads=self.n_threads, exclude_diagonal=True
        )
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.similarity_, np.asarray(items, dtype=np.int64), k)


class ContentCompanions(ItemRecommender):
    """What goes with a product, learned from its look-alikes that sell.

    The score of ``j`` for item ``i`` is ``(sum_n w_n c(n, j) + m P(j)) / (sum_n w_n c(n) + m)``
    over the ``neighbours`` most similar items ``n`` that have sales: ``w_n`` their content
    TF-IDF cosine with ``i``, ``c(n, j)`` co-purchase counts (each look-alike's ``companions``
    best; a look-alike itself counts as bought with ``i`` as often as chance predicts),
    ``c(n)`` its order count, ``P(j)`` the share of orders holding ``j`` and ``m`` the prior:
    a Bayesian estimate of ``P(j | i)`` pooled over the look-alikes, shrunk toward popularity.

    Parameters
    ----------
    neighbours
        Selling look-alikes averaged per item.
    companions
        Companions kept per look-alike.
    prior
        Weight ``m`` of the popularity prior, in orders (300: best on the FBT-v1 validation
        splits' cold slices, ``benchmarks/tune_engine.py``).
    max_neighbours
        Length of the stored list per item.
    n_threads
        Threads of the sparse products.
    """

    name = "content"

    def __init__(
        self,
        neighbours: int = 20,
        companions: int = 100,
        prior: float = 300.0,
        max_neighbours: int = 50,
        n_threads: int | None = None,
    ) -> None:
        self.neighbours = neighbours
        self.companions = companions
        self.prior = prior
        self.max_neighbours = max_neighbours
        self.n_threads = n_threads

    def fit(self, data: Interactions) -> Self:
        content = data.content or ItemContent.empty(data.n_items)
        F = item_features(content)
        pop = column_counts(data.baskets)
        warm = (pop > 0).astype(np.float64)
        # look-alikes among the items that sell (a cold item has no companions to lend)
        N = topk_product(
            F, scale_rows(F, warm).T.tocsr(), self.neighbours, self.n_threads, exclude_diagonal=True
        )
        # pooled over the look-alikes, each weighted by its similarity: a rarely sold or barely
        # similar look-alike lends little evidence, and the prior shrinks it toward popularity
        X = data.baskets
        C = topk_product(X.T.tocsr(), X, self.companions, self.n_threads, exclude_diagonal=True)
        # a look-alike's pair below the services' privacy threshold lends nothing either
        C = censor_pairs(C, data, privacy_threshold(data))
        # a look-alike is itself a candidate companion of the item (two yogurts go together);
        # its own count c(n, n) says nothing about that, so it enters as if independent
        C = (C + sp.diags(pop * pop / max(data.n_orders, 1))).tocsr()
        S = topk_product(N, C, self.max_neighbours, self.n_threads).tocsr()
        pooled = np.asarray(N @ pop).ravel()  # the look-alikes' (weighted) order count
        share = pop / max(data.n_orders, 1)
        rows = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
        S.data = (S.data + self.prior * share[S.indices]) / (pooled[rows] + self.prior)
        self.scores_: sp.csr_matrix = S
        self.features_: sp.csr_matrix = F
        # the look-alikes' weighted order count: the scores under another prior follow from it
        self.pooled_: npt.NDArray[np.float64] = pooled
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.scores_, np.asarray(items, dtype=np.int64), k)


class CategoryCompanions(ItemRecommender):
    """What a category sells with: the companions of a product with no sales, from its shelf.

    For each category path ``g`` (every level, ``"dairy"`` and ``"dairy > yogurt"``), the
    companions of its items are pooled: ``num_g(j) = sum_{n in g, n != j} c(n, j)`` over
    co-purchase counts and ``den_g(j) = sum_{n in g, n != j} c(n)`` over order counts. Down the
    path each level is shrunk toward its parent, the top toward popularity ``P(j)``::

        p_g(j) = (num_g(j) + m p_parent(g)(j)) / (den_g(j) + m)

    and an item with no sales is served its leaf category's ``P(j) ** (1 - b) * p_g(j) ** b``
    (``b``: the lift exponent; 1 is the Bayesian estimate, below 1 damps the category's lift
    over popularity). Complements, not look-alikes: a new yogurt is served what yogurts sell
    with (granola, berries, and other yogurts as often as yogurts really go together).

    Parameters
    ----------
    prior
        Weight ``m`` of the parent level's estimate, in orders (1000: best of 30-1000 on the
        FBT-v1 validation splits' cold slices, ``benchmarks/tune_engine.py``).
    exponent
        ``b``, the weight of the category's lift over popularity (1: best of 0.5, 0.75, 1).
    max_neighbours
        Companions kept per category (and so per item).

    Notes
    -----
    Never builds an ``items x items`` or dense ``categories x items`` matrix: each level's
    estimate is ``alpha_g P(j)`` outside a sparse support (the items bought with the category or
    in it, and the parent's support), so a category costs the size of that support.
    """

    name = "category_companions"

    def __init__(
        self, prior: float = 1000.0, exponent: float = 1.0, max_neighbours: int = 100
    ) -> None:
        self.prior = prior
        self.exponent = exponent
        self.max_neighbours = max_neighbours

    def fit(self, data: Interactions) -> Self:
        if self.prior < 0 or not 0 <= self.exponent <= 1:
            raise ValueError("prior must be >= 0 and exponent in [0, 1]")
        content = data.content or ItemContent.empty(data.n_items)
        n_items = data.n_items
        levels = category_levels(content.categories)
        paths = sorted({p for lv in levels for p in lv}, key=lambda p: (p.count(">"), p))
        index = {p: g for g, p in enumerate(paths)}
        rows = [i for i, lv in enumerate(levels) for _ in lv]
        cols = [index[p] for lv in levels for p in lv]
        G = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n_items, len(paths))
        )
        X = data.baskets.astype(np.float64)
        pop = column_counts(data.baskets)
        P = pop / max(data.n_orders, 1)
        # num[g, j]: co-purchases of j with the items of g (j's own orders removed when j is in g)
        Gt = G.T.tocsr()
        own_orders = Gt.copy()
        own_orders.data = own_orders.data * pop[own_orders.indices]
        M = (X @ G).tocsc()
        num = (sp.csr_matrix(M.T @ X) - own_orders).tocsr()
        num.eliminate_zeros()
        den_g = np.asarray(Gt @ pop).ravel()
        pop_order = np.lexsort((np.arange(n_items), -pop))
        pop_order = pop_order[pop[pop_order] > 0]
        m, b, k = float(self.prior), float(self.exponent), self.max_neighbours + 1
        # each level: alpha * P(j) outside the support ``idx``, ``val`` on it
        est: dict[str, tuple[float, npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        leaf_rows: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        leaves = {lv[0] for lv in levels if lv}
        parents = {p.rpartition(">")[0] for p in paths}
        in_idx = np.zeros(n_items, dtype=bool)  # scratch mask, always left all False
        for g, path in enumerate(paths):
            parent = path.rpartition(">")[0]
            p_alpha, p_idx, p_val = est.get(parent, (1.0, np.empty(0, np.int64), np.empty(0)))
            members = Gt.indices[Gt.indptr[g] : Gt.indptr[g + 1]]
            own = num.indices[num.indptr[g] : num.indptr[g + 1]]
            in_idx[p_idx] = True
            in_idx[own] = True
            in_idx[members] = True
            idx = np.flatnonzero(in_idx).astype(np.int64)
            in_idx[idx] = False
            par = p_alpha * P[idx]
            par[np.searchsorted(idx, p_idx)] = p_val
            nm = np.zeros(len(idx))
            nm[np.searchsorted(idx, own)] = num.data[num.indptr[g] : num.indptr[g + 1]]
            den = np.full(len(idx), den_g[g])
            den[np.searchsorted(idx, members)] -= pop[members]
            with np.errstate(invalid="ignore", divide="ignore"):
                val = np.where(den + m > 0, (nm + m * par) / (den + m), par)
            alpha = p_alpha * (m / (den_g[g] + m) if den_g[g] + m > 0 else 1.0)
            if path in parents:  # only a parent's estimate is needed later
                est[path] = (alpha, idx, val)
            if path in leaves:
                # outside the support the order is popularity's: its first k items suffice
                in_idx[idx] = True
                head = pop_order[: k + len(idx)]
                rest = head[~in_idx[head]][:k]
                in_idx[idx] = False
                cand = np.concatenate([idx, rest])
                pj = np.concatenate([val, alpha * P[rest]])
                score = P[cand] ** (1 - b) * pj**b if b != 1 else pj
                keep = score > 0
                cand, score = cand[keep], score[keep]
                top = np.lexsort((cand, -score))[:k]
                leaf_rows[path] = (cand[top], score[top])
        indptr = [0]
        out_i: list[npt.NDArray[np.int64]] = []
        out_v: list[npt.NDArray[np.float64]] = []
        for lv in levels:
            ci, cv = leaf_rows[lv[0]] if lv else (np.empty(0, np.int64), np.empty(0))
            out_i.append(ci)
            out_v.append(cv)
            indptr.append(indptr[-1] + len(ci))
        self.scores_: sp.csr_matrix = sp.csr_matrix(
            (
                np.concatenate(out_v) if out_v else np.empty(0),
                np.concatenate(out_i) if out_i else np.empty(0, np.int64),
                np.asarray(indptr),
            ),
            shape=(n_items, n_items),
        )
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.scores_, np.asarray(items, dtype=np.int64), k)
