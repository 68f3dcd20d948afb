"""The engine's data types and the base class every strategy follows.

Strategies follow scikit-learn's conventions: ``__init__`` stores parameters only, ``fit``
returns ``self``, learned attributes end in ``_``, and anything random takes ``random_state``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ItemContent:
    """What the shop says about each item, aligned with the item index.

    Parameters
    ----------
    names, texts, categories
        One string per item; ``categories`` are paths such as ``"Photo > Cameras"``.
    prices
        One price per item (``nan`` when unknown).
    """

    names: list[str]
    texts: list[str]
    categories: list[str]
    prices: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.names)
        if not (len(self.texts) == len(self.categories) == len(self.prices) == n):
            raise ValueError("ItemContent fields must all have one entry per item")

    @classmethod
    def empty(cls, n_items: int) -> ItemContent:
        return cls([""] * n_items, [""] * n_items, [""] * n_items, np.full(n_items, np.nan))


@dataclass(frozen=True)
class Interactions:
    """What a strategy learns from.

    Parameters
    ----------
    baskets
        ``n_orders x n_items`` CSR matrix, 1.0 where the order holds the item (binary).
    customers
        Length ``n_orders``: the customer index of each order. A guest order gets an index of
        its own, so ``n_customers >= number of distinct known customers``.
    n_customers
        The number of customer indices.
    content
        What the shop says about each item, or ``None``.
    """

    baskets: sp.csr_matrix
    customers: IntArray
    n_customers: int
    content: ItemContent | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not sp.issparse(self.baskets) or self.baskets.format != "csr":
            raise TypeError("baskets must be a scipy.sparse CSR matrix")
        if len(self.customers) != self.baskets.shape[0]:
            raise ValueError("customers must have one entry per order (row of baskets)")
        if self.content is not None and len(self.content.names) != self.baskets.shape[1]:
            raise ValueError("content must have one entry per item (column of baskets)")

    @property
    def n_orders(self) -> int:
        return int(self.baskets.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.baskets.shape[1])

    @classmethod
    def from_baskets(
        cls,
        baskets: sp.spmatrix | sp.sparray,
        customers: npt.ArrayLike | None = None,
        content: ItemContent | None = None,
    ) -> Interactions:
        """Build from any sparse matrix; each order is its own customer unless told otherwise."""
        X = sp.csr_matrix(baskets, dtype=np.float32)
        X.sum_duplicates()
        X.data[:] = 1.0
        X.eliminate_zeros()
        if customers is None:
            cust = np.arange(X.shape[0], dtype=np.int64)
        else:
            cust = np.asarray(customers, dtype=np.int64)
        n_customers = int(cust.max()) + 1 if len(cust) else 0
        return cls(X, cust, n_customers, content)

    def customer_items(self) -> sp.csr_matrix:
        """``n_customers x n_items`` binary matrix: who ever bought what."""
        n = self.n_orders
        C = sp.csr_matrix(
            (np.ones(n, dtype=np.float32), (self.customers, np.arange(n))),
            shape=(self.n_customers, n),
        )
        U = (C @ self.baskets).tocsr()
        U.data[:] = 1.0
        return U


@dataclass
class TopK:
    """Ranked lists: row ``i`` answers query ``i``; ``-1`` pads a list shorter than ``k``.

    ``sources`` (optional) holds, per slot, the index into ``source_names`` of the strategy that
    put the item there (a blend fills it; a single strategy leaves it ``None``).
    """

    indices: IntArray
    scores: FloatArray
    sources: npt.NDArray[np.int8] | None = None
    source_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.indices.shape != self.scores.shape or self.indices.ndim != 2:
            raise ValueError("indices and scores must be 2-d arrays of the same shape")

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def row(self, i: int) -> list[int]:
        """The items of row ``i``, without padding."""
        r = self.indices[i]
        return [int(x) for x in r[r >= 0]]


class ItemRecommender(ABC):
    """Base class: fit on interactions, then rank items for items, baskets or customers."""

    #: The name recorded with every recommendation this strategy produces.
    name: ClassVar[str] = "base"

    @abstractmethod
    def fit(self, data: Interactions) -> Self:
        """Learn from ``data``; returns ``self``."""

    @abstractmethod
    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        """The ``k`` best companions of each of ``items``; never the item itself."""

    def recommend_basket(self, basket: npt.ArrayLike, k: int) -> TopK:
        """The ``k`` best additions to one basket (a cart); never an item already in it.

        The default sums the item-to-item scores of the basket's items; strategies that know
        better (rules with several items on the left) override it.
        """
        items = np.unique(np.asarray(basket, dtype=np.int64))
        wide = self.similar_items(items, k + len(items))
        acc: dict[int, float] = {}
        for row_idx, row_scores in zip(wide.indices, wide.scores, strict=True):
            for j, s in zip(row_idx, row_scores, strict=True):
                if j >= 0:
                    acc[int(j)] = acc.get(int(j), 0.0) + float(s)
        for j in items:
            acc.pop(int(j), None)
        ranked = sorted(acc.items(), key=lambda t: (-t[1], t[0]))[:k]
        return _single_row(ranked, k)


def _single_row(ranked: list[tuple[int, float]], k: int) -> TopK:
    idx = np.full((1, k), -1, dtype=np.int64)
    sc = np.zeros((1, k), dtype=np.float32)
    for pos, (j, s) in enumerate(ranked):
        idx[0, pos] = j
        sc[0, pos] = s
    return TopK(idx, sc)


def topk_rows(S: sp.csr_matrix, rows: IntArray, k: int, exclude_self: bool = True) -> TopK:
    """Top ``k`` columns of each requested row of a sparse score matrix, best first.

    Ties break by the smaller column index, so results are deterministic.
    """
    S = S.tocsr()
    out_i = np.full((len(rows), k), -1, dtype=np.int64)
    out_s = np.zeros((len(rows), k), dtype=np.float32)
    for pos, r in enumerate(rows):
        a, b = S.indptr[r], S.indptr[r + 1]
        cols, vals = S.indices[a:b], S.data[a:b]
        if exclude_self:
            keep = cols != r
            cols, vals = cols[keep], vals[keep]
        keep = vals > 0
        cols, vals = cols[keep], vals[keep]
        if len(cols) == 0:
            continue
        order = np.lexsort((cols, -vals))[:k]
        out_i[pos, : len(order)] = cols[order]
        out_s[pos, : len(order)] = vals[order]
    return TopK(out_i, out_s)


class UserRecommender(ABC):
    """Base class of "recommended for you": fit on interactions, rank items for customers."""

    #: The name recorded with every recommendation this strategy produces.
    name: ClassVar[str] = "base-user"

    @abstractmethod
    def fit(self, data: Interactions) -> Self:
        """Learn from ``data``; returns ``self``."""

    @abstractmethod
    def recommend(self, customers: npt.ArrayLike, k: int, exclude_seen: bool = True) -> TopK:
        """The ``k`` best items for each of ``customers`` (customer indices of the fitted data).

        With ``exclude_seen`` the items a customer already bought are never returned.
        """


def empty_topk(n_rows: int, k: int) -> TopK:
    """A ``TopK`` of ``n_rows`` rows with every slot padded (``-1``)."""
    return TopK(np.full((n_rows, k), -1, dtype=np.int64), np.zeros((n_rows, k), dtype=np.float32))


def dense_topk(
    scores: npt.NDArray[np.floating], k: int, exclude: sp.csr_matrix | None = None
) -> TopK:
    """Top ``k`` columns of each row of a dense score matrix, best first.

    Parameters
    ----------
    scores
        ``n_rows x n_items`` scores; only positive or finite scores above ``-inf`` are kept.
    k
        List length; short rows are padded with ``-1``.
    exclude
        Optional ``n_rows x n_items`` sparse mask of items never to return (e.g. already bought).

    Notes
    -----
    Ties break by the smaller column index, so results are deterministic.
    """
    S = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None and exclude.nnz:
        r, c = exclude.nonzero()
        S[r, c] = -np.inf
    n_rows, n_items = S.shape
    kk = min(k, n_items)
    out = empty_topk(n_rows, k)
    if kk == 0 or n_rows == 0:
        return out
    part = (
        np.argpartition(-S, kk - 1, axis=1)[:, :kk]
        if kk < n_items
        else np.tile(np.arange(n_items), (n_rows, 1))
    )
    # argpartition does not order ties by index: take every column tied with the k-th value too
    kth = np.take_along_axis(S, part, axis=1).min(axis=1)
    for i in range(n_rows):
        cand = np.flatnonzero(S[i] >= kth[i]) if np.isfinite(kth[i]) else part[i]
        vals = S[i, cand]
        order = np.lexsort((cand, -vals))[:kk]
        cols, v = cand[order], vals[order]
        good = np.isfinite(v)
        cols, v = cols[good], v[good]
        out.indices[i, : len(cols)] = cols
        out.scores[i, : len(cols)] = v
    return out
