"""The "rank and write" step of a build, shared by the single-process rebuild and a chord shard.

:func:`rank_and_write` turns a fitted strategy into a build's stored lists: the bought-together
kind and, when ``CROSSSELL_KINDS`` has it, the also-bought kind, for every item or for a
shard's range of items. The ranking itself is the engine's (:mod:`crosssell.engine.ranking`);
this step adds what only the services know: the merchant's exclusions and the products behind
the item indices (:mod:`crosssell.services.rows_writer`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crosssell.conf import settings
from crosssell.engine.base import ItemRecommender
from crosssell.engine.ranking import EvidenceCounts, ExcludedFn, also_bought_model, compute_rows
from crosssell.models import Build, Recommendation
from crosssell.services import cart_store, exclusions
from crosssell.services.catalog import get_catalog
from crosssell.services.extract import Extracted
from crosssell.services.rows_writer import ProgressFn, write_rows


def rank_and_write(
    build: Build,
    ex: Extracted,
    model: ItemRecommender,
    report: ProgressFn,
    *,
    items: npt.NDArray[np.int64] | None = None,
) -> int:
    """Rank ``items`` with the fitted ``model`` and write their lists of every kind for
    ``build``; returns how many rows were written.

    The bought-together lists come from ``model``; the also-bought ones, when that kind is in
    ``CROSSSELL_KINDS``, from the customers' whole histories (:func:`also_bought_model`). Both
    drop the merchant's exclusions and share one :class:`EvidenceCounts`, so each co-count is
    computed once for the whole step.

    Parameters
    ----------
    build
        The running build the rows belong to.
    ex
        The extracted data ``model`` was fitted on.
    model
        The fitted strategy of the bought-together kind.
    report
        ``report(stage, fraction, rows)``: the "rank" and "write" stages' progress.
    items
        Item indices to rank (a chord shard's range); default every item. The caller removes
        any rows these items already have in ``build`` (a shard's retry) before calling.

    Returns
    -------
    int
        Rows written, both kinds together.
    """
    excluded = exclusion_filter(ex)
    counts = EvidenceCounts(ex.data)  # co-counts computed once for both kinds
    also_bought = Recommendation.Kind.ALSO_BOUGHT in settings.KINDS
    if also_bought and items is not None:
        # That kind's model is the customers' whole co-count matrix: a shard counts it once, up
        # front, and its bought-together pairs' privacy threshold reads it too (rather than
        # counting its few sources' pairs in blocks first). Every item's pairs count it anyway.
        counts.customers.matrix()
    rows = compute_rows(
        ex.data, model, settings.LIST_LENGTH, settings.MIN_CUSTOMERS, items=items,
        excluded=excluded, counts=counts,
    )  # fmt: skip
    report("write", 0.0, len(rows))
    written = write_rows(build, ex, rows, Recommendation.Kind.BOUGHT_TOGETHER, report)
    # the cart widget's vectors of the same items, from the same co-counts
    cart_store.write_cart_vectors(build, ex, counts, items, replace=items is not None)
    if also_bought:
        data, also = also_bought_model(ex.data, ex.product_ids, counts)
        report("rank", 0.0, ex.n_lines)
        rows = compute_rows(
            data, also, settings.LIST_LENGTH, settings.MIN_CUSTOMERS, items=items,
            excluded=excluded, counts=counts.over_customers(data),
        )  # fmt: skip
        written += write_rows(build, ex, rows, Recommendation.Kind.ALSO_BOUGHT, report)
    return written


def exclusion_filter(ex: Extracted) -> ExcludedFn | None:
    """The merchant's exclusions as a function of item-index pairs (``None`` if none)."""
    rules = exclusions.load_rules(cached=False)
    if not rules:
        return None
    pids = ex.product_ids
    # Every category of each product (an exclusion by category matches any of them): one
    # query over the catalog, only when some exclusion names a category.
    by_pk = get_catalog().categories_for() if rules.by_category else {}
    cats: list[tuple[str, ...]] = [by_pk.get(int(pk), ()) for pk in pids.tolist()]

    def excluded(src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        flags = exclusions.mask(
            rules,
            pids[src].tolist(),
            [cats[i] for i in src.tolist()],
            pids[dst].tolist(),
            [cats[i] for i in dst.tolist()],
        )
        return np.asarray(flags, dtype=bool)

    return excluded


__all__ = ["exclusion_filter", "rank_and_write"]
