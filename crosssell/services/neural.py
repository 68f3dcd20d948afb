"""The neural strategy's life cycle: retrain from the ORM, store a versioned artifact in Django
storage, and load the current one for the rebuild's blend.

An artifact is a folder ``<CROSSSELL_MODEL_STORAGE_PREFIX>/neural/<version>/`` holding the Keras
file, the arrays and ``metadata.json``; the file ``neural/CURRENT`` names the version in use and
is written last, so the previous artifact keeps serving until the new one is complete.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from crosssell.conf import settings
from crosssell.engine.base import Interactions, ItemRecommender, TopK
from crosssell.engine.evaluation.holdout import holdout_metrics
from crosssell.services.extract import extract

logger = logging.getLogger(__name__)
ARTIFACT_FILES = ("model.keras", "arrays.npz", "metadata.json")


def _root() -> str:
    return f"{settings.MODEL_STORAGE_PREFIX}/neural"


def current_version() -> str | None:
    """The version the rebuild uses, or ``None`` before the first training."""
    path = f"{_root()}/CURRENT"
    if not default_storage.exists(path):
        return None
    with default_storage.open(path, "rb") as fh:
        return fh.read().decode().strip() or None


def retrain(**params: Any) -> dict[str, Any]:
    """Train the neural strategy on every purchase and make the artifact current.

    Parameters
    ----------
    **params
        Overrides of ``NeuralRecommender``'s parameters (``max_steps=...``).

    Returns
    -------
    dict
        The artifact's metadata, with its ``version``.
    """
    from crosssell.engine.neural import NeuralRecommender

    started = time.perf_counter()
    ex = extract()
    options = {"random_state": settings.RANDOM_STATE, **params}
    # Offline metrics: a model trained on 90% of the orders, asked about the other 10%.
    metrics = holdout_metrics(ex.data, lambda: NeuralRecommender(**options))
    model = NeuralRecommender(**options)
    model.fit(ex.data)
    version = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp, item_ids=ex.product_ids.tolist(), metrics=metrics)
        for name in ARTIFACT_FILES:
            data = (Path(tmp) / name).read_bytes()
            default_storage.save(f"{_root()}/{version}/{name}", ContentFile(data))
        meta: dict[str, Any] = NeuralRecommender.read_metadata(tmp)
    # The switch: only now does the rebuild see the new version.
    pointer = f"{_root()}/CURRENT"
    default_storage.delete(pointer)
    default_storage.save(pointer, ContentFile(version.encode()))
    meta["version"] = version
    meta["retrain_seconds"] = round(time.perf_counter() - started, 2)
    logger.info("crosssell neural model %s trained in %.1fs", version, meta["retrain_seconds"])
    return meta


def load_current(product_ids: npt.NDArray[np.int64] | list[int]) -> Any | None:
    """The current model, checked against today's product index; ``None`` when there is none
    or when the catalog changed since training (then the blend simply goes without it until
    the next retrain)."""
    version = current_version()
    if version is None:
        return None
    # Serving from a stored model needs only its arrays: no TensorFlow.
    from crosssell.engine.neural import ArtifactMismatchError, NeuralRecommender

    cache_dir = Path(tempfile.gettempdir()) / "crosssell-neural" / version
    if not (cache_dir / "metadata.json").is_file():
        partial = cache_dir.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name in ARTIFACT_FILES:
            with default_storage.open(f"{_root()}/{version}/{name}", "rb") as fh:
                (partial / name).write_bytes(fh.read())
        shutil.rmtree(cache_dir, ignore_errors=True)
        partial.rename(cache_dir)
    try:
        return NeuralRecommender.load(
            cache_dir, expected_items=[int(p) for p in product_ids], load_model=False
        )
    except ArtifactMismatchError as exc:
        logger.warning("the stored neural model %s does not fit the catalog: %s", version, exc)
        return None


class StoredNeural(ItemRecommender):
    """The current stored neural model as a blend step: ``fit`` loads it instead of training.

    Without a usable artifact it answers nothing, and the blend's next steps fill the lists.
    """

    name = "neural"

    def __init__(self, product_ids: list[int] | None = None) -> None:
        self.product_ids = product_ids

    def fit(self, data: Interactions) -> Self:
        ids: Any = self.product_ids
        if ids is None:
            ids = data.extra.get("item_ids", np.arange(data.n_items))
        self.model_: Any | None = load_current(ids)
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        if self.model_ is None:
            q = np.asarray(items, dtype=np.int64)
            return TopK(np.full((len(q), k), -1, dtype=np.int64), np.zeros((len(q), k), np.float32))
        top: TopK = self.model_.similar_items(items, k)
        return top
