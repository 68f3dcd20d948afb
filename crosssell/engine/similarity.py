"""Sparse building blocks: weighting, top-k sparse products and exact counts for pairs.

Item-item similarities of a large catalog are never materialised as a dense ``items x items``
matrix: :func:`topk_product` keeps only the best ``k`` entries of each row of ``A @ B``, through
``sparse_dot_topn`` (multithreaded C++) when it is installed and a chunked scipy product otherwise.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import IntArray

#: Rows of ``A`` multiplied at once by the scipy fallback of :func:`topk_product`.
CHUNK = 2048


def column_counts(X: sp.csr_matrix) -> npt.NDArray[np.float64]:
    """Number of stored non-zeros (orders, customers) per column."""
    return np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)


def scale_columns(X: sp.csr_matrix, factors: npt.NDArray[np.floating]) -> sp.csr_matrix:
    """``X @ diag(factors)`` without building the diagonal matrix."""
    Y = X.astype(np.result_type(X.dtype, np.float32), copy=True)
    Y.data *= np.asarray(factors, dtype=Y.dtype)[Y.indices]
    return Y


def scale_rows(X: sp.csr_matrix, factors: npt.NDArray[np.floating]) -> sp.csr_matrix:
    """``diag(factors) @ X`` without building the diagonal matrix."""
    Y = X.astype(np.float64, copy=True)
    Y.data *= np.repeat(np.asarray(factors, dtype=np.float64), np.diff(Y.indptr))
    return Y


def l2_normalize_columns(X: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each column to unit length (empty columns stay empty)."""
    sq = np.bincount(
        X.indices, weights=np.asarray(X.data, dtype=np.float64) ** 2, minlength=X.shape[1]
    )
    inv = np.zeros(len(sq), dtype=np.float64)
    np.divide(1.0, np.sqrt(sq), out=inv, where=sq > 0)
    return scale_columns(X, inv)


def l2_normalize_rows(X: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each row to unit length (empty rows stay empty)."""
    sq = np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel()
    inv = np.zeros_like(sq)
    np.divide(1.0, np.sqrt(sq), out=inv, where=sq > 0)
    return scale_rows(X.tocsr(), inv)


def tfidf_weight(X: sp.csr_matrix) -> sp.csr_matrix:
    """TF-IDF of an ``orders x items`` matrix: items bought in many orders weigh less per order.

    The weight of a line is ``idf(order size)``-style: ``log(n_items / basket size)``, as
    implicit's ``tfidf_weight`` does for the transposed matrix.
    """
    X = X.tocsr().astype(np.float64)
    sizes = np.diff(X.indptr).astype(np.float64)
    idf = np.log(X.shape[1] / np.maximum(sizes, 1.0)) + 1.0
    return scale_rows(X, idf)


def bm25_weight(X: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Okapi BM25 weighting of an ``orders x items`` matrix (items are the "documents").

    Each line is weighted by the rarity of its order (orders holding many items say less about
    any pair) and damped by the length of the item's purchase vector, as in implicit's
    ``bm25_weight`` applied to the item-by-order matrix.
    """
    X = X.tocsr().astype(np.float64)
    n_items = X.shape[1]
    order_len = np.diff(X.indptr).astype(np.float64)
    idf = np.log(n_items / np.maximum(order_len, 1.0))
    idf = np.maximum(idf, 0.0) + 1e-3
    item_len = column_counts(X)
    avg = item_len[item_len > 0].mean() if (item_len > 0).any() else 1.0
    norm = (1.0 - b) + b * item_len / avg
    Y = X.copy()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    Y.data = Y.data * (k1 + 1.0) / (k1 * norm[Y.indices] + Y.data) * idf[rows]
    return Y


def _have_topn() -> bool:
    try:
        import sparse_dot_topn  # noqa: F401
    except ImportError:
        return False
    return True


def topk_product(
    A: sp.csr_matrix,
    B: sp.csr_matrix,
    k: int,
    n_threads: int | None = None,
    exclude_diagonal: bool = False,
) -> sp.csr_matrix:
    """The ``k`` largest positive entries of each row of ``A @ B``, as CSR.

    Parameters
    ----------
    A, B
        Sparse matrices with ``A.shape[1] == B.shape[0]``.
    k
        Entries kept per row.
    n_threads
        Threads for ``sparse_dot_topn`` (``None``: one).
    exclude_diagonal
        Drop entry ``(i, i)`` (a square product of an item with itself) before choosing the top.

    Notes
    -----
    With ``exclude_diagonal`` one extra entry is computed per row, so each row still keeps ``k``.
    """
    # float32 in, float32 out (half the memory traffic); anything else is computed in float64
    single = A.dtype == np.float32 and B.dtype == np.float32
    dtype = np.float32 if single else np.float64
    A = sp.csr_matrix(A, dtype=dtype)
    B = sp.csr_matrix(B, dtype=dtype)
    kk = k + 1 if exclude_diagonal else k
    if A.shape[0] == 0 or B.shape[1] == 0 or kk <= 0:
        return sp.csr_matrix(A.shape[:1] + B.shape[1:], dtype=dtype)
    if _have_topn():
        from sparse_dot_topn import sp_matmul_topn

        threads = n_threads if n_threads and n_threads > 1 else None
        S = sp.csr_matrix(sp_matmul_topn(A, B, top_n=kk, threshold=0.0, n_threads=threads))
    else:
        S = _topk_product_scipy(A, B, kk)
    if exclude_diagonal:
        S = _drop_diagonal(S, k)
    return S


def _drop_diagonal(S: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Drop entry ``(i, i)``, then each row's smallest entry if it still holds ``k + 1``.

    Rows hold at most ``k + 1`` entries (a top-``k + 1`` product), in any order, so no sort is
    needed: one minimum per over-full row.
    """
    n_rows = S.shape[0]
    counts = np.diff(S.indptr)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
    keep = S.indices != rows
    over = np.bincount(rows[keep], minlength=n_rows) > k
    if over.any():
        masked = np.where(keep, S.data, np.inf)
        mins = np.full(n_rows, np.inf, dtype=masked.dtype)
        nonempty = counts > 0
        mins[nonempty] = np.minimum.reduceat(masked, S.indptr[:-1][nonempty])
        cand = keep & over[rows] & (masked == mins[rows])
        # one entry per row, even when the minimum is tied
        cs = np.cumsum(cand)
        before = np.r_[0, cs][S.indptr[:-1]]
        keep &= ~(cand & (cs - before[rows] == 1))
    indptr = np.r_[0, np.cumsum(np.bincount(rows[keep], minlength=n_rows))]
    return sp.csr_matrix((S.data[keep], S.indices[keep], indptr), shape=S.shape)


def _topk_product_scipy(A: sp.csr_matrix, B: sp.csr_matrix, k: int) -> sp.csr_matrix:
    parts = []
    for start in range(0, A.shape[0], CHUNK):
        P = (A[start : start + CHUNK] @ B).tocsr()
        P.data[P.data <= 0] = 0
        P.eliminate_zeros()
        parts.append(sort_rows(keep_top_per_row(P, k)))
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, B.shape[1]))


def sort_rows(S: sp.csr_matrix) -> sp.csr_matrix:
    """Reorder each row's entries best first (ties: smaller column first)."""
    counts = np.diff(S.indptr)
    rows = np.repeat(np.arange(S.shape[0]), counts)
    order = np.lexsort((S.indices, -S.data, rows))
    return sp.csr_matrix((S.data[order], S.indices[order], S.indptr.copy()), shape=S.shape)


def keep_top_per_row(S: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (ties: smaller column first)."""
    S = S.tocsr()
    counts = np.diff(S.indptr)
    if counts.size == 0 or counts.max(initial=0) <= k:
        return S
    rows = np.repeat(np.arange(S.shape[0]), counts)
    order = np.lexsort((S.indices, -S.data, rows))
    rank = np.arange(len(order)) - np.repeat(S.indptr[:-1], counts)
    keep = order[rank < k]
    keep.sort()
    return sp.csr_matrix(
        (S.data[keep], S.indices[keep], np.r_[0, np.cumsum(np.minimum(counts, k))]),
        shape=S.shape,
    )


def pair_counts(M: sp.csr_matrix, src: IntArray, dst: IntArray, chunk: int = CHUNK) -> IntArray:
    """Exact ``(M.T @ M)[src, dst]`` for many pairs: rows of ``M`` holding both columns.

    Parameters
    ----------
    M
        Binary ``rows x items`` matrix (orders or customers by items).
    src, dst
        Item indices of the pairs (same length).
    chunk
        Distinct ``src`` items whose co-count rows are computed at once (bounds the memory).
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    if src.shape != dst.shape:
        raise ValueError("src and dst must have the same length")
    out = np.zeros(len(src), dtype=np.int64)
    if len(src) == 0:
        return out
    n_items = M.shape[1]
    B = sp.csr_matrix(M, dtype=np.float64)
    B.data[:] = 1.0
    MT = B.T.tocsr()
    uniq, inv = np.unique(src, return_inverse=True)
    for start in range(0, len(uniq), chunk):
        block = uniq[start : start + chunk]
        R = (MT[block] @ B).tocsr()
        R.sort_indices()
        rows = np.repeat(np.arange(R.shape[0], dtype=np.int64), np.diff(R.indptr))
        keys = rows * n_items + R.indices
        sel = np.flatnonzero((inv >= start) & (inv < start + len(block)))
        want = (inv[sel] - start) * n_items + dst[sel]
        pos = np.searchsorted(keys, want).clip(max=max(len(keys) - 1, 0))
        found = (keys[pos] == want) if len(keys) else np.zeros(len(want), dtype=bool)
        out[sel] = np.where(found, np.rint(R.data[pos] if len(keys) else 0), 0).astype(np.int64)
    return out
