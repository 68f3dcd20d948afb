"""A rebuild as a Celery chord: shards of products ranked by any number of workers.

The interaction matrix travels through Django storage (one ``.npz`` written once, read by each
shard), never through the broker; the merge and the swap happen once, in the chord's callback.
Each shard deletes what an earlier attempt of it wrote before writing, so a redelivered shard
(a killed worker, ``acks_late``) leaves no duplicates.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from crosssell.conf import settings
from crosssell.engine.base import Interactions, ItemContent
from crosssell.engine.evidence import MIN_CUSTOMERS_KEY
from crosssell.models import Build, Recommendation
from crosssell.services import incremental
from crosssell.services.build import (
    fail_build,
    finish_build,
    rebuild,
    resolve_strategy,
    start_build,
)
from crosssell.services.extract import Extracted, extract
from crosssell.services.locks import REBUILD_LOCK, CacheLock, LockTimeout, rebuild_lock
from crosssell.services.products import products
from crosssell.services.ranking_step import rank_and_write
from crosssell.services.tuning import tune_and_measure, tuned_model

logger = logging.getLogger(__name__)


#: Sends the chord of a build (its id, the product ranges ``(start, stop)``, the strategy): one
#: shard task per range, then :func:`finish`, or :func:`failed` when a shard fails. The caller
#: that owns the tasks passes it (``crosssell.tasks.launch_rebuild_chord``): a service never
#: imports the tasks.
ChordLauncher = Callable[[int, list[tuple[int, int]], str | None], None]


class LockBusy(LockTimeout):
    """Another rebuild holds the lock; the task retries later instead of blocking a worker."""


def start_rebuild(
    trigger: str,
    task_id: str = "",
    strategy: str | None = None,
    launch: ChordLauncher | None = None,
) -> int:
    """Run a rebuild: in this worker for a small catalog, as a chord above the shard size.

    Parameters
    ----------
    trigger, task_id, strategy
        As for :func:`crosssell.services.build.rebuild`.
    launch
        Sends the chord (see :data:`ChordLauncher`). Without one the rebuild runs in this
        process whatever the catalog's size.

    Returns
    -------
    int
        The build's id (for a chord, the build is still running when this returns).

    Raises
    ------
    LockBusy
        When another rebuild runs.
    """
    n = products().count()
    shard = int(settings.SHARD_SIZE)
    if n <= shard or launch is None:
        try:
            return rebuild(trigger=trigger, task_id=task_id, strategy=strategy, wait=0).pk
        except LockTimeout as exc:
            raise LockBusy(str(exc)) from exc
    return start_chord(trigger, task_id, strategy, shard, launch)


def start_chord(
    trigger: str, task_id: str, strategy: str | None, shard: int, launch: ChordLauncher
) -> int:
    """Extract once, store the matrix, and ``launch`` one shard task per product range."""
    # The lock outlives this task (the chord's callback releases it): each shard runs a
    # heartbeat while it works, and a chord whose workers died lets it expire.
    try:
        lock = rebuild_lock(wait=0).take()
    except LockTimeout as exc:
        raise LockBusy(str(exc)) from exc
    model = resolve_strategy(strategy)
    build = start_build(trigger, task_id, model)
    try:
        # Beating while this task works (the extraction and the tuning may outlast the TTL);
        # then extended once more, so the shards have a whole TTL to start their own beats.
        with lock.keep_alive():
            covered = incremental.pending_snapshot()  # applied by this build once it is live
            ex = extract()
            save_extracted(build, ex)
            _save_covered(build, covered)
            # Tuned once, here: the shards rebuild the tuned strategy from the chosen values
            # (and the cart vectors read theirs from the build's parameters).
            _, build.metrics = tune_and_measure(build, ex.data, model)
        lock.refresh()
        n = ex.data.n_items
        ranges = [(a, min(a + shard, n)) for a in range(0, n, shard)]
        build.parameters = {**build.parameters, "shards": len(ranges)}
        build.lock_token = lock.token
        build.progress = {"stage": "rank", "percent": 0, "rows": ex.n_lines}
        build.save(update_fields=["parameters", "lock_token", "progress", "metrics"])
        transaction.on_commit(lambda: launch(build.pk, ranges, strategy))
    except BaseException as exc:
        fail_build(build, exc)
        lock.release()
        raise
    return build.pk


def rank_shard(build_id: int, start: int, stop: int, strategy: str | None) -> int:
    """Rank products ``start..stop`` of the stored matrix and write them (idempotent)."""
    build = Build.objects.get(pk=build_id)
    token = build.lock_token
    if token:
        with CacheLock.resume(REBUILD_LOCK, token).keep_alive():  # the fit may outlast its TTL
            return _rank_shard(build, start, stop, strategy)
    return _rank_shard(build, start, stop, strategy)


def _rank_shard(build: Build, start: int, stop: int, strategy: str | None) -> int:
    ex = load_extracted(build)
    ex.data.extra.setdefault("item_ids", ex.product_ids)
    # a strategy that reads it scores the pairs below the threshold as never bought together
    ex.data.extra[MIN_CUSTOMERS_KEY] = settings.MIN_CUSTOMERS
    model = tuned_model(build, resolve_strategy(strategy)).fit(ex.data)
    sources = ex.product_ids[start:stop].tolist()
    with transaction.atomic():
        Recommendation.objects.filter(build=build, source_id__in=sources).delete()
        return rank_and_write(
            build, ex, model, lambda *a: None, items=np.arange(start, stop, dtype=np.int64)
        )


def finish(results: list[int], build_id: int) -> int:
    """The chord's callback: count, publish, release the lock, drop the stored matrix."""
    build = Build.objects.get(pk=build_id)
    try:
        ex = load_extracted(build)
        covered = _load_covered(build)
        finish_build(build, ex, int(sum(results)), {"shards": len(results)})
    except BaseException as exc:
        fail_build(build, exc)
        raise
    finally:
        _release(build)
    incremental.clear_pending(covered)
    return build.pk


def failed(build_id: int) -> None:
    """The chord's error callback: the build failed; the live one stays."""
    build = Build.objects.get(pk=build_id)
    if build.state == Build.State.RUNNING:
        fail_build(build, RuntimeError("a shard of the rebuild failed"))
    _release(build)


def _release(build: Build) -> None:
    if build.lock_token:
        CacheLock.resume(REBUILD_LOCK, build.lock_token).release()
    default_storage.delete(_path(build))
    default_storage.delete(_path(build, "covered.npy"))


def _path(build: Build, name: str = "extracted.npz") -> str:
    return f"{settings.MODEL_STORAGE_PREFIX}/builds/{build.pk}/{name}"


def _save_covered(build: Build, pks: list[int]) -> None:
    """Store the pending updates the chord's extraction counted (cleared once it is live)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(pks, dtype=np.int64), allow_pickle=False)
    default_storage.delete(_path(build, "covered.npy"))
    default_storage.save(_path(build, "covered.npy"), ContentFile(buf.getvalue()))


def _load_covered(build: Build) -> list[int]:
    path = _path(build, "covered.npy")
    if not default_storage.exists(path):  # a chord started by an older version
        return []
    with default_storage.open(path, "rb") as fh:
        pks: list[int] = np.load(io.BytesIO(fh.read()), allow_pickle=False).tolist()
    return pks


def save_extracted(build: Build, ex: Extracted) -> str:
    """Write the extracted matrix and content to Django storage (no pickle)."""
    X = ex.data.baskets
    content = ex.data.content or ItemContent.empty(ex.data.n_items)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        indptr=X.indptr,
        indices=X.indices,
        shape=np.asarray(X.shape),
        customers=ex.data.customers,
        n_customers=np.asarray([ex.data.n_customers]),
        product_ids=ex.product_ids,
        n_lines=np.asarray([ex.n_lines]),
        names=np.asarray(content.names, dtype=str),
        texts=np.asarray(content.texts, dtype=str),
        categories=np.asarray(content.categories, dtype=str),
        prices=content.prices,
    )
    path = _path(build)
    default_storage.delete(path)
    return default_storage.save(path, ContentFile(buf.getvalue()))


def load_extracted(build: Build) -> Extracted:
    """Read what :func:`save_extracted` wrote."""
    with default_storage.open(_path(build), "rb") as fh:
        z: Any = np.load(io.BytesIO(fh.read()), allow_pickle=False)
    shape = tuple(int(v) for v in z["shape"])
    X = sp.csr_matrix(
        (np.ones(len(z["indices"]), dtype=np.float32), z["indices"], z["indptr"]), shape=shape
    )
    content = ItemContent(
        [str(v) for v in z["names"]],
        [str(v) for v in z["texts"]],
        [str(v) for v in z["categories"]],
        z["prices"].astype(np.float64),
    )
    data = Interactions(X, z["customers"].astype(np.int64), int(z["n_customers"][0]), content)
    return Extracted(data, z["product_ids"].astype(np.int64), int(z["n_lines"][0]))
