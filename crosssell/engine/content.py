"""Content-based strategies: what the shop says about a product (name, text, category, price).

They serve the products with no sales yet. ``ContentSimilar`` finds look-alikes (TF-IDF cosine);
``ContentCompanions`` answers the question a product page asks, "what goes with it", for a
product nobody bought: the co-purchase companions of its best-selling look-alikes. Look-alikes
are substitutes, not complements (a new yogurt's companions are not other yogurts only), so the
second is the one the blend uses for cold products.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from crosssell.engine.base import Interactions, ItemContent, ItemRecommender, TopK, topk_rows
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
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return topk_rows(self.scores_, np.asarray(items, dtype=np.int64), k)
