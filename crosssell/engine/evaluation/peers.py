"""The peers of PROTOCOL.md, implemented as ``peer_eval.py`` does (same ranking, same ties).

They exist to put our strategies side by side with the published peer numbers on the same split;
the shop never serves them. ``implicit`` is optional and imported only when its peer runs.
"""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import (
    IntArray,
    Interactions,
    ItemRecommender,
    TopK,
    UserRecommender,
    dense_topk,
    empty_topk,
)


def peer_topk(S: sp.csr_matrix, items: IntArray, k: int) -> TopK:
    """``peer_eval.topk_from_sparse``: argpartition, then a stable sort by score (its ties)."""
    S = S.tocsr().copy()
    S.setdiag(0)
    S.eliminate_zeros()
    out = empty_topk(len(items), k)
    for pos, i in enumerate(items.tolist()):
        a, b = S.indptr[i], S.indptr[i + 1]
        idx, val = S.indices[a:b], S.data[a:b]
        if len(idx) > k:
            sel = np.argpartition(-val, k)[:k]
            idx, val = idx[sel], val[sel]
        order = np.argsort(-val, kind="stable")[:k]
        out.indices[pos, : len(order)] = idx[order]
        out.scores[pos, : len(order)] = val[order]
    return out


class _PeerBase(ItemRecommender):
    name: ClassVar[str] = "peer"

    def _scores(self, data: Interactions) -> sp.csr_matrix:
        raise NotImplementedError

    def fit(self, data: Interactions) -> Self:
        self.scores_ = self._scores(data)
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        return peer_topk(self.scores_, np.asarray(items, dtype=np.int64), k)


class PeerPopularity(_PeerBase):
    """Popularity only (every slot filled by the evaluation's popularity fill)."""

    name = "popularity"

    def _scores(self, data: Interactions) -> sp.csr_matrix:
        return sp.csr_matrix((data.n_items, data.n_items), dtype=np.float32)


class PeerCoCount(_PeerBase):
    """The co-purchase count (= confidence ranking), the best FBT-v1 peer."""

    name = "cocount"

    def _scores(self, data: Interactions) -> sp.csr_matrix:
        return (data.baskets.T @ data.baskets).tocsr()


class PeerLift(_PeerBase):
    """Lift with at least 2 co-purchases."""

    name = "lift"

    def _scores(self, data: Interactions) -> sp.csr_matrix:
        C = (data.baskets.T @ data.baskets).tocoo()
        pop = np.asarray(data.baskets.sum(axis=0)).ravel()
        keep = C.data >= 2
        v = C.data[keep] / (pop[C.row[keep]] * pop[C.col[keep]])
        return sp.csr_matrix((v, (C.row[keep], C.col[keep])), shape=C.shape)


class PeerCosine(_PeerBase):
    """Cosine of the items' order vectors."""

    name = "cosine"

    def _scores(self, data: Interactions) -> sp.csr_matrix:
        C = (data.baskets.T @ data.baskets).tocoo()
        pop = np.asarray(data.baskets.sum(axis=0)).ravel()
        v = C.data / np.sqrt(pop[C.row] * pop[C.col])
        return sp.csr_matrix((v, (C.row, C.col)), shape=C.shape)


class PeerImplicitCosine(ItemRecommender):
    """implicit's ``CosineRecommender`` (K=50), the reference item-item implementation."""

    name = "implicit-cosine"

    def __init__(self, neighbours: int = 50) -> None:
        self.neighbours = neighbours

    def fit(self, data: Interactions) -> Self:
        import warnings

        from implicit.nearest_neighbours import CosineRecommender

        self.model_ = CosineRecommender(K=self.neighbours)
        with warnings.catch_warnings():
            # implicit converts its own transposed copy and warns about it
            warnings.simplefilter("ignore")
            self.model_.fit(data.baskets, show_progress=False)
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        q = np.asarray(items, dtype=np.int64)
        ids, scores = self.model_.similar_items(q, N=k + 1)
        out = empty_topk(len(q), k)
        for pos, i in enumerate(q.tolist()):
            keep = (ids[pos] != i) & (ids[pos] >= 0)
            row, sc = ids[pos][keep][:k], scores[pos][keep][:k]
            out.indices[pos, : len(row)] = row
            out.scores[pos, : len(row)] = sc
        return out


class PeerUserPopularity(UserRecommender):
    """PERSONAL-MS's popularity row: the most bought items a customer has not bought yet."""

    name = "popularity"

    def fit(self, data: Interactions) -> Self:
        self.user_items_ = data.customer_items()
        self.counts_ = np.asarray(self.user_items_.sum(axis=0), dtype=np.float64).ravel()
        return self

    def recommend(self, customers: npt.ArrayLike, k: int, exclude_seen: bool = True) -> TopK:
        c = np.asarray(customers, dtype=np.int64)
        scores = np.tile(self.counts_, (len(c), 1))
        return dense_topk(scores, k, self.user_items_[c] if exclude_seen else None)


def implicit_available() -> bool:
    """Whether the optional ``implicit`` package can be imported."""
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


PEERS: dict[str, type[ItemRecommender]] = {
    "peer-popularity": PeerPopularity,
    "peer-cocount": PeerCoCount,
    "peer-cosine": PeerCosine,
    "peer-implicit-cosine": PeerImplicitCosine,
}
