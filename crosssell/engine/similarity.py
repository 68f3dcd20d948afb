"""Sparse building blocks: weighting, top-k sparse products and exact counts for pairs.

Item-item similarities of a large catalog are never materialised as a dense ``items x items``
matrix: :func:`topk_product` keeps only the best ``k`` entries of each row of ``A @ B``, through
``sparse_dot_topn`` (multithreaded C++) when it is installed and a chunked scipy product otherwise.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import FloatArray, IntArray, TopK, topk_rows

#: Rows of ``A`` multiplied at once by the scipy fallback of :func:`topk_product`.
CHUNK = 2048
#: Entries whose ranking keys :func:`top_counts_per_row` computes at once (bounds the memory).
TOP_BLOCK = 1 << 22


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


def binary_counts_matrix(M: sp.csr_matrix) -> sp.csr_matrix:
    """``M`` with every stored entry 1, as integers (int32 while counts fit, else int64); a
    copy, never a view of ``M``'s arrays (summing duplicates sorts them in place)."""
    dtype = np.int32 if M.shape[0] < 2**31 else np.int64
    B = sp.csr_matrix(
        (np.ones(M.nnz, dtype=dtype), M.indices.copy(), M.indptr.copy()), shape=M.shape
    )
    B.sum_duplicates()
    B.data[:] = 1
    return B


def cooccurrence_counts(M: sp.csr_matrix) -> sp.csr_matrix:
    """Exact ``M.T @ M`` of a binary ``rows x items`` matrix, as integer counts.

    Entry ``(i, j)`` is the number of rows holding both ``i`` and ``j`` (the diagonal: rows
    holding ``i``). Integers, not floats, so that counts are exact whatever their size (a float32
    product rounds above 2**24). The product is ``sparse_dot_topn``'s when it is installed: one
    pass instead of scipy's two, about a third less time. Indices are NOT sorted within rows
    (sorting them costs as much again); :func:`lookup_pairs` needs no order.
    """
    B = binary_counts_matrix(M)
    BT = B.T.tocsr()
    if B.shape[1] == 0 or B.nnz == 0:
        return sp.csr_matrix((B.shape[1], B.shape[1]), dtype=B.dtype)
    sizes = np.diff(B.indptr).astype(np.int64)
    # the result has at most sum(size**2) entries: 32-bit indices while that fits
    small = int((sizes * sizes).sum()) < 2**31 - 1
    if _have_topn():
        from sparse_dot_topn import sp_matmul

        C = sp.csr_matrix(sp_matmul(BT, B, idx_dtype=np.int32 if small else np.int64))
    else:
        C = (BT @ B).tocsr()
    return C


def lookup_pairs(C: sp.csr_matrix, src: IntArray, dst: IntArray) -> IntArray:
    """``C[src, dst]`` for many pairs at once, as int64; ``C``'s indices need not be sorted.

    The distinct pairs become a 0/1 pattern matrix; the elementwise product with ``C`` (one
    pass over ``C``, no sort of its millions of entries) keeps at most one entry per pair,
    which is matched to its pair by a binary search among the distinct pairs.
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    if src.shape != dst.shape:
        raise ValueError("src and dst must have the same length")
    if len(src) == 0:
        return np.zeros(0, dtype=np.int64)
    n_rows, n_cols = C.shape
    keys = src * n_cols + dst
    uniq, inverse = np.unique(keys, return_inverse=True)
    rows = uniq // n_cols
    indptr = np.searchsorted(rows, np.arange(n_rows + 1, dtype=np.int64))
    pattern = sp.csr_matrix(
        (np.ones(len(uniq), dtype=C.dtype), uniq % n_cols, indptr), shape=C.shape
    )
    hit = sp.csr_matrix(C.multiply(pattern))
    hit_rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(hit.indptr))
    hit_keys = hit_rows * n_cols + hit.indices
    values = np.zeros(len(uniq), dtype=np.int64)
    # every stored entry of the product lies on the pattern: its key is one of ``uniq``
    found = hit.data if hit.dtype.kind in "iu" else np.rint(hit.data)
    values[np.searchsorted(uniq, hit_keys)] = found.astype(np.int64)
    return values[inverse.reshape(-1)]


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

    Notes
    -----
    To ask about most items, or several times, :class:`PairCounter` computes ``M.T @ M`` once.
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    if src.shape != dst.shape:
        raise ValueError("src and dst must have the same length")
    out = np.zeros(len(src), dtype=np.int64)
    if len(src) == 0:
        return out
    B = binary_counts_matrix(M)
    MT = B.T.tocsr()
    uniq, inv = np.unique(src, return_inverse=True)
    inv = inv.reshape(-1)
    order = np.argsort(inv, kind="stable")  # the pairs grouped by source block
    bounds = np.searchsorted(inv[order], np.arange(0, len(uniq) + chunk, chunk))
    for n, start in enumerate(range(0, len(uniq), chunk)):
        block = uniq[start : start + chunk]
        R = (MT[block] @ B).tocsr()
        sel = order[bounds[n] : bounds[n + 1]]
        out[sel] = lookup_pairs(R, inv[sel] - start, dst[sel])
    return out


def top_counts_per_row(S: sp.csr_matrix, rows: IntArray, k: int) -> TopK:
    """:func:`~crosssell.engine.base.topk_rows` of an integer matrix (co-counts), faster.

    The same lists (each row's ``k`` largest positive entries off the diagonal, ties by the
    smaller column), whether or not the indices are sorted. On integers that order is the one
    of a single int64 key, ``-count * n_columns + column``: the keys are computed for many
    rows at once (``TOP_BLOCK`` entries), and each row only partitions its keys and sorts its
    ``k`` best, which decode back to columns and counts. A float matrix (or counts too large
    for such keys) goes to ``topk_rows``.
    """
    n = S.shape[1]
    if S.dtype.kind not in "iu" or (S.nnz and int(S.data.max()) >= 2**62 // max(n, 1)):
        return topk_rows(S, rows, k)  # not integers, or keys that would not fit in int64
    rows = np.asarray(rows, dtype=np.int64)
    none = np.iinfo(np.int64).max  # sorts after every real key
    best = np.full((len(rows), max(k, 0)), none, dtype=np.int64)
    if k > 0 and len(rows):
        starts = S.indptr[rows].astype(np.int64)
        lengths = S.indptr[rows + 1].astype(np.int64) - starts
        ends = np.cumsum(lengths)
        first = 0
        while first < len(rows):
            # rows first..last-1 hold at most TOP_BLOCK entries (or are one longer row)
            done = ends[first - 1] if first else 0
            last = max(int(np.searchsorted(ends, done + TOP_BLOCK, side="right")), first + 1)
            part = slice(first, last)
            bounds = np.r_[0, ends[part] - done]
            offsets = np.arange(bounds[-1], dtype=np.int64) + np.repeat(
                starts[part] - bounds[:-1], lengths[part]
            )
            cols = S.indices[offsets].astype(np.int64)
            vals = S.data[offsets].astype(np.int64)
            valid = (cols != np.repeat(rows[part], lengths[part])) & (vals > 0)
            key = np.where(valid, -vals * n + cols, none)
            del cols, vals, valid, offsets
            for pos, a, b in zip(
                range(first, last), bounds[:-1].tolist(), bounds[1:].tolist(), strict=True
            ):
                top = key[a:b]  # a view: partitioned and sorted in place
                if b - a > k:
                    top.partition(k - 1)
                    top = top[:k]
                top.sort()
                best[pos, : len(top)] = top
            first = last
    found = best != none
    out_i: IntArray = np.where(found, best % max(n, 1), -1)
    out_s: FloatArray = np.where(found, -(best // max(n, 1)), 0).astype(np.float32)
    return TopK(out_i, out_s)


class PairCounter:
    """:func:`pair_counts` of one matrix, asked many times: computes ``M.T @ M`` once when that
    pays, and looks every later question up in it.

    The whole product is computed (:func:`cooccurrence_counts`) the first time a call asks
    about at least ``full_share`` of the items as sources, or :meth:`matrix` is called; until
    then each call counts only its own sources' rows, in blocks (bounded memory, less work
    for a few sources). Either way the counts are exact and the same.

    Parameters
    ----------
    M
        Binary ``rows x items`` matrix.
    full_share
        Share of the items, as distinct sources of one call, from which the whole product is
        computed and kept.
    """

    def __init__(self, M: sp.csr_matrix, full_share: float = 0.5) -> None:
        self.M = M
        self.full_share = full_share
        self._matrix: sp.csr_matrix | None = None

    def matrix(self) -> sp.csr_matrix:
        """``M.T @ M`` as exact integer counts, indices unsorted (computed on first use)."""
        if self._matrix is None:
            self._matrix = cooccurrence_counts(self.M)
        return self._matrix

    def __call__(self, src: IntArray, dst: IntArray) -> IntArray:
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        if self._matrix is None:
            n_items = self.M.shape[1]
            many = len(src) >= self.full_share * n_items and len(np.unique(src)) >= (
                self.full_share * n_items
            )
            if not many:
                return pair_counts(self.M, src, dst)
        return lookup_pairs(self.matrix(), src, dst)
