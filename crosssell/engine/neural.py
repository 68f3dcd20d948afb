"""The deep-learning strategy: a two-tower Keras model of what is bought with what.

A *query tower* maps an item (its id, when it has sales, and its content: category levels,
name tokens, price band) to a vector; a *candidate tower* maps an item to a vector and a bias.
The score of candidate ``j`` for query ``q`` is ``<u_q, v_j> + b_j``. Training fits
``softmax_j(score)`` to the observed companion distribution of ``q`` (its co-purchase counts,
normalised): exact targets from all the baskets rather than a few sampled pairs, which is what
lets the model rank the head of the list as well as plain counting does. The bias carries
popularity (bananas go with everything); the dot product carries what ``q`` changes.

The query tower's id input is dropped for a share of the training rows, so the content path
alone learns to answer; a product without sales (a new one) is served from its content. The
candidates are the best-selling items (all of them in a shop of a few thousand products).

TensorFlow is imported here only, and this module only when the strategy is asked for.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crosssell.engine.base import (
    FloatArray,
    IntArray,
    Interactions,
    ItemContent,
    ItemRecommender,
    TopK,
)
from crosssell.engine.neural_features import (
    FeatureTable,
    Vocabulary,
    build_features,
    item_index_hash,
    learn_vocabulary,
)

#: Bump when the artifact layout changes; ``load`` refuses other versions.
FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
ARRAYS_FILE = "arrays.npz"
METADATA_FILE = "metadata.json"
INSTALL_HINT = 'the neural strategy needs TensorFlow: pip install "django-crosssell[deep]"'


class ArtifactMismatchError(ValueError):
    """A saved model does not fit this code or this catalog."""


def _tensorflow() -> Any:
    try:
        import tensorflow as tf
    except ImportError as exc:  # the [deep] extra is optional
        raise ImportError(INSTALL_HINT) from exc
    return tf


class NeuralRecommender(ItemRecommender):
    """Two-tower model of co-purchases, with content features for products without sales.

    Parameters
    ----------
    embedding_dim
        Size of the query and candidate vectors.
    hidden_units
        Width of each tower's hidden layer.
    id_dropout
        Share of training rows whose query loses its id, so the content path learns alone.
    epochs
        Passes over the items with co-purchases (each a query once per pass).
    min_steps, max_steps
        Bounds on the number of training steps whatever ``epochs`` says.
    batch_size
        Query items per step.
    max_candidates
        Only the best-selling ``max_candidates`` items are candidates (recommended); every step
        is an exact softmax over them.
    learning_rate
        Adam's step size.
    max_name_tokens, min_token_count, max_vocabulary, n_price_bands
        Content features: see :func:`crosssell.engine.neural_features.learn_vocabulary`.
    random_state
        Seed of everything random (initialisation, batches, id dropout); runs with the same
        seed on the same machine give identical models.
    deterministic
        Ask TensorFlow for deterministic ops (process-wide; slightly slower).
    n_threads
        TensorFlow's thread pools, when TensorFlow has not started yet (``None``: its default).
    verbose
        Show a progress bar (stderr) while training.
    """

    name: ClassVar[str] = "neural"

    def __init__(
        self,
        embedding_dim: int = 64,
        hidden_units: int = 128,
        id_dropout: float = 0.5,
        epochs: float = 20.0,
        min_steps: int = 200,
        max_steps: int = 600,
        batch_size: int = 256,
        max_candidates: int = 4096,
        learning_rate: float = 0.003,
        max_name_tokens: int = 8,
        min_token_count: int = 2,
        max_vocabulary: int = 20000,
        n_price_bands: int = 8,
        random_state: int = 0,
        deterministic: bool = True,
        n_threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.embedding_dim = embedding_dim
        self.hidden_units = hidden_units
        self.id_dropout = id_dropout
        self.epochs = epochs
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.max_candidates = max_candidates
        self.learning_rate = learning_rate
        self.max_name_tokens = max_name_tokens
        self.min_token_count = min_token_count
        self.max_vocabulary = max_vocabulary
        self.n_price_bands = n_price_bands
        self.random_state = random_state
        self.deterministic = deterministic
        self.n_threads = n_threads
        self.verbose = verbose
        _tensorflow()  # fail early, with the install hint, when the extra is missing

    # -- scikit-learn style parameters ---------------------------------------------------

    _PARAMS: ClassVar[tuple[str, ...]] = (
        "embedding_dim",
        "hidden_units",
        "id_dropout",
        "epochs",
        "min_steps",
        "max_steps",
        "batch_size",
        "max_candidates",
        "learning_rate",
        "max_name_tokens",
        "min_token_count",
        "max_vocabulary",
        "n_price_bands",
        "random_state",
        "deterministic",
        "n_threads",
        "verbose",
    )

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as scikit-learn's ``get_params`` (not deep)."""
        return {p: getattr(self, p) for p in self._PARAMS}

    def _check_params(self) -> None:
        positive = (
            "embedding_dim",
            "hidden_units",
            "batch_size",
            "max_candidates",
            "max_steps",
        )
        for p in positive:
            if int(getattr(self, p)) < 1:
                raise ValueError(f"{p} must be at least 1, got {getattr(self, p)!r}")
        if not 0.0 <= self.id_dropout <= 1.0:
            raise ValueError(f"id_dropout must be in [0, 1], got {self.id_dropout!r}")
        if self.min_steps > self.max_steps:
            raise ValueError("min_steps must not exceed max_steps")
        if self.epochs <= 0 or self.learning_rate <= 0:
            raise ValueError("epochs and learning_rate must be positive")

    # -- training ------------------------------------------------------------------------

    def fit(self, data: Interactions) -> Self:
        """Learn item vectors from the baskets of ``data`` and the content of its items.

        Parameters
        ----------
        data
            The baskets; ``data.content`` (names, categories, prices) lets products without
            sales be served. ``data.extra["item_ids"]`` (optional) names the items, and its hash
            is saved with the model so that ``load`` can refuse another catalog.

        Returns
        -------
        NeuralRecommender
            ``self``, fitted.
        """
        self._check_params()
        tf = _tensorflow()
        import keras

        self._configure_tensorflow(tf, keras)
        started = time.perf_counter()
        X = data.baskets
        n_items = data.n_items
        content = data.content if data.content is not None else ItemContent.empty(n_items)
        counts = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
        warm = counts > 0
        if not warm.any():
            raise ValueError("the baskets hold no purchases: nothing to learn from")
        vocab = learn_vocabulary(
            content, warm, self.min_token_count, self.max_vocabulary, self.n_price_bands
        )
        feats = build_features(content, vocab, self.max_name_tokens)
        rng = np.random.default_rng(self.random_state)
        sold = np.flatnonzero(warm).astype(np.int64)
        by_sales = sold[np.lexsort((sold, -counts[sold]))]
        candidates = np.sort(by_sales[: self.max_candidates])
        # Companion counts of every item with the candidates (the diagonal is the item itself,
        # never its own companion).
        Xb = X.astype(np.float32)
        C = (Xb.T @ Xb[:, candidates]).tocsr()
        pos = np.full(n_items, -1, dtype=np.int64)
        pos[candidates] = np.arange(len(candidates))
        C = C.tocoo()
        keep = pos[C.row] != C.col
        C = sp.csr_matrix((C.data[keep], (C.row[keep], C.col[keep])), shape=C.shape)
        mass = np.asarray(C.sum(axis=1), dtype=np.float64).ravel()
        queries = np.flatnonzero(mass > 0)
        if len(queries) == 0:
            raise ValueError("no order holds two items: there are no co-purchases to learn from")
        # Queries are drawn as often as they take part in a co-purchase, as in the baskets.
        q_cdf = np.cumsum(mass[queries])
        q_cdf /= q_cdf[-1]

        towers = _build_towers(keras, n_items, vocab, self.max_name_tokens, self)
        bias_init = np.zeros((n_items + 1, 1), dtype=np.float32)
        lp = np.log(counts[candidates])
        bias_init[candidates + 1, 0] = lp - lp.mean()
        towers.get_layer("candidate_tower").get_layer("candidate_id_bias").set_weights([bias_init])
        trainer = _Trainer(tf, keras, towers, feats, candidates, self.learning_rate)

        steps_per_epoch = max(1, math.ceil(len(queries) / self.batch_size))
        n_steps = int(np.clip(round(self.epochs * steps_per_epoch), self.min_steps, self.max_steps))
        history: list[float] = []
        running: list[float] = []
        every = max(1, n_steps // 10)
        progress = _progress(n_steps, self.verbose)
        for step in range(n_steps):
            draw = np.searchsorted(q_cdf, rng.random(self.batch_size), side="right")
            q = queries[np.minimum(draw, len(queries) - 1)]
            keep_id = rng.random(self.batch_size) >= self.id_dropout
            target = C[q].toarray()
            target /= target.sum(axis=1, keepdims=True)
            running.append(trainer.step(q, np.where(keep_id, q + 1, 0), pos[q], target))
            if len(running) == every or step == n_steps - 1:
                history.append(float(np.mean(running)))
                running = []
            progress.update(1)
        progress.close()

        self.model_: Any = towers
        self.vocabulary_: Vocabulary = vocab
        self.features_: FeatureTable = feats
        self.item_counts_: npt.NDArray[np.float64] = counts
        self.candidates_: IntArray = candidates
        q_ids = np.where(warm, np.arange(n_items) + 1, 0)
        self.query_vectors_: FloatArray = trainer.embed(np.arange(n_items), q_ids, "query")[0]
        cv, cb = trainer.embed(candidates, candidates + 1, "candidate")
        self.candidate_vectors_: FloatArray = cv
        self.candidate_bias_: FloatArray = cb
        self.loss_history_: list[float] = history
        self.n_steps_: int = n_steps
        self.fit_seconds_: float = time.perf_counter() - started
        self.data_size_: dict[str, int] = {
            "n_orders": data.n_orders,
            "n_lines": int(X.nnz),
            "n_items": n_items,
            "n_items_with_sales": len(sold),
            "n_candidates": len(candidates),
        }
        ids = data.extra.get("item_ids") if data.extra else None
        self.item_index_hash_: str = item_index_hash(
            list(ids) if isinstance(ids, Sequence | np.ndarray) else range(n_items)
        )
        self.metrics_: dict[str, float] = {}
        return self

    def _configure_tensorflow(self, tf: Any, keras: Any) -> None:
        if self.n_threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(self.n_threads)
                tf.config.threading.set_inter_op_parallelism_threads(self.n_threads)
            except RuntimeError:  # TensorFlow already started: its pools cannot change now
                pass
        keras.utils.set_random_seed(self.random_state)
        if self.deterministic:
            tf.config.experimental.enable_op_determinism()

    # -- recommendations -----------------------------------------------------------------

    @property
    def n_items_(self) -> int:
        return int(self.query_vectors_.shape[0])

    def _scores(self, query: FloatArray) -> FloatArray:
        return np.asarray(query @ self.candidate_vectors_.T + self.candidate_bias_, np.float32)

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        """The ``k`` best companions of each of ``items`` (items with sales; never the item).

        Parameters
        ----------
        items
            Item indices; an item without sales is answered from its content.
        k
            List length; ``-1`` pads only when fewer than ``k`` candidates exist.
        """
        q = self._check_items(items)
        out_i = np.full((len(q), k), -1, dtype=np.int64)
        out_s: FloatArray = np.zeros((len(q), k), dtype=np.float32)
        chunk = max(1, 2_000_000 // max(1, len(self.candidates_)))
        for start in range(0, len(q), chunk):
            rows = q[start : start + chunk]
            S = self._scores(self.query_vectors_[rows])
            exclude = self.candidates_[None, :] == rows[:, None]
            S[exclude] = -np.inf
            for r in range(len(rows)):
                idx, sc = _top(S[r], self.candidates_, k)
                out_i[start + r, : len(idx)] = idx
                out_s[start + r, : len(idx)] = sc
        return TopK(out_i, out_s)

    def recommend_basket(self, basket: npt.ArrayLike, k: int) -> TopK:
        """The ``k`` best additions to a basket: its items' query vectors averaged.

        Parameters
        ----------
        basket
            Item indices in the cart (duplicates ignored); none of them is recommended.
        k
            List length; ``-1`` pads only when fewer than ``k`` candidates exist.
        """
        items = np.unique(self._check_items(basket))
        out_i = np.full((1, k), -1, dtype=np.int64)
        out_s: FloatArray = np.zeros((1, k), dtype=np.float32)
        if len(items) == 0:
            return TopK(out_i, out_s)
        S = self._scores(self.query_vectors_[items].mean(axis=0, keepdims=True))[0]
        S[np.isin(self.candidates_, items)] = -np.inf
        idx, sc = _top(S, self.candidates_, k)
        out_i[0, : len(idx)] = idx
        out_s[0, : len(idx)] = sc
        return TopK(out_i, out_s)

    def _check_items(self, items: npt.ArrayLike) -> IntArray:
        if not hasattr(self, "query_vectors_"):
            raise RuntimeError("NeuralRecommender is not fitted: call fit() or load() first")
        q = np.atleast_1d(np.asarray(items, dtype=np.int64))
        if len(q) and (q.min() < 0 or q.max() >= self.n_items_):
            raise IndexError(f"item indices must be in [0, {self.n_items_})")
        return q

    # -- artifact ------------------------------------------------------------------------

    def save(
        self,
        directory: str | Path,
        item_ids: Sequence[object] | None = None,
        metrics: dict[str, float] | None = None,
    ) -> Path:
        """Write the model to ``directory``: Keras file, numpy arrays, ``metadata.json``.

        No pickle anywhere: the Keras native format, ``np.savez(allow_pickle=False)`` and JSON.

        Parameters
        ----------
        directory
            Created if missing; existing artifact files in it are replaced.
        item_ids
            The ids of the item index (position -> id); their hash replaces the one recorded by
            ``fit`` (from ``data.extra["item_ids"]``, else positions).
        metrics
            Offline metrics to record (merged into ``metrics_``).

        Returns
        -------
        pathlib.Path
            The directory.
        """
        if not hasattr(self, "query_vectors_"):
            raise RuntimeError("NeuralRecommender is not fitted: nothing to save")
        tf = _tensorflow()
        import keras

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if item_ids is not None:
            if len(item_ids) != self.n_items_:
                raise ValueError(f"item_ids has {len(item_ids)} ids for {self.n_items_} items")
            self.item_index_hash_ = item_index_hash(item_ids)
        if metrics:
            self.metrics_ = {**self.metrics_, **{k: float(v) for k, v in metrics.items()}}
        self.model_.save(out / MODEL_FILE)
        v, f = self.vocabulary_, self.features_
        np.savez(
            out / ARRAYS_FILE,
            allow_pickle=False,
            query_vectors=self.query_vectors_,
            candidate_vectors=self.candidate_vectors_,
            candidate_bias=self.candidate_bias_,
            candidates=self.candidates_,
            item_counts=self.item_counts_,
            loss_history=np.asarray(self.loss_history_, dtype=np.float64),
            feature_tops=f.tops,
            feature_paths=f.paths,
            feature_tokens=f.tokens,
            feature_prices=f.prices,
            vocab_tops=v.tops,
            vocab_paths=v.paths,
            vocab_tokens=v.tokens,
            vocab_price_edges=v.price_edges,
        )
        meta = {
            "format_version": FORMAT_VERSION,
            "strategy": self.name,
            "n_items": self.n_items_,
            "item_index_sha256": self.item_index_hash_,
            "data_size": self.data_size_,
            "parameters": self.get_params(),
            "metrics": self.metrics_,
            "n_steps": self.n_steps_,
            "fit_seconds": round(self.fit_seconds_, 3),
            "final_loss": self.loss_history_[-1] if self.loss_history_ else None,
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "numpy_version": np.__version__,
        }
        (out / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return out

    @staticmethod
    def read_metadata(directory: str | Path) -> dict[str, Any]:
        """The ``metadata.json`` of a saved model (no TensorFlow needed)."""
        path = Path(directory) / METADATA_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {METADATA_FILE} in {directory}: not a saved neural model")
        meta: dict[str, Any] = json.loads(path.read_text())
        return meta

    @classmethod
    def load(
        cls,
        directory: str | Path,
        expected_items: Sequence[object] | int | None = None,
        load_model: bool = True,
    ) -> NeuralRecommender:
        """Read a model written by :meth:`save`, refusing one that does not fit.

        Parameters
        ----------
        directory
            What :meth:`save` wrote.
        expected_items
            The current item index: a sequence of ids (count and hash must match) or just the
            number of items. ``None`` skips the check.
        load_model
            Also load the Keras model (``model_``); recommendations only need the arrays.

        Raises
        ------
        ArtifactMismatchError
            Another format version, another item count or another item index.
        """
        meta = cls.read_metadata(directory)
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ArtifactMismatchError(
                f"artifact format version {version!r}, this code reads version {FORMAT_VERSION}: "
                "train the model again"
            )
        n_items = int(meta["n_items"])
        if expected_items is not None:
            if isinstance(expected_items, int | np.integer):
                n_expected, expected_hash = int(expected_items), None
            else:
                n_expected = len(expected_items)
                expected_hash = item_index_hash(expected_items)
            if n_expected != n_items:
                raise ArtifactMismatchError(
                    f"the model was trained on {n_items} items, the catalog has {n_expected}: "
                    "train the model again"
                )
            if expected_hash is not None and expected_hash != meta["item_index_sha256"]:
                raise ArtifactMismatchError(
                    "the model was trained on another item index (same size, other ids or "
                    "order): train the model again"
                )
        params = {k: v for k, v in meta["parameters"].items() if k in cls._PARAMS}
        # Not ``cls(**params)``: serving from the arrays must work without TensorFlow.
        self = cls.__new__(cls)
        defaults = inspect.signature(cls.__init__).parameters
        for name in cls._PARAMS:
            setattr(self, name, params.get(name, defaults[name].default))
        with np.load(Path(directory) / ARRAYS_FILE, allow_pickle=False) as a:
            self.query_vectors_ = a["query_vectors"]
            self.candidate_vectors_ = a["candidate_vectors"]
            self.candidate_bias_ = a["candidate_bias"]
            self.candidates_ = a["candidates"]
            self.item_counts_ = a["item_counts"]
            self.loss_history_ = a["loss_history"].tolist()
            self.features_ = FeatureTable(
                a["feature_tops"], a["feature_paths"], a["feature_tokens"], a["feature_prices"]
            )
            self.vocabulary_ = Vocabulary(
                a["vocab_tops"], a["vocab_paths"], a["vocab_tokens"], a["vocab_price_edges"]
            )
        if self.query_vectors_.shape[0] != n_items:
            raise ArtifactMismatchError(
                f"{ARRAYS_FILE} holds {self.query_vectors_.shape[0]} items, metadata says {n_items}"
            )
        self.item_index_hash_ = meta["item_index_sha256"]
        self.data_size_ = dict(meta.get("data_size", {}))
        self.metrics_ = dict(meta.get("metrics", {}))
        self.n_steps_ = int(meta.get("n_steps", 0))
        self.fit_seconds_ = float(meta.get("fit_seconds", 0.0))
        if load_model:
            _tensorflow()
            import keras

            self.model_ = keras.models.load_model(Path(directory) / MODEL_FILE, compile=False)
        return self

    def __repr__(self) -> str:
        changed = {p: getattr(self, p) for p in self._PARAMS}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({args})"


# -- internals ---------------------------------------------------------------------------


def _top(scores: FloatArray, candidates: IntArray, k: int) -> tuple[IntArray, FloatArray]:
    """Best ``k`` finite scores, ties by the smaller item index."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) > k:
        part = finite[np.argpartition(-scores[finite], k - 1)[:k]]
        # argpartition may cut a tie at the k-th score: take every tied item, then order.
        kth = scores[part].min()
        finite = finite[scores[finite] >= kth]
    order = np.lexsort((candidates[finite], -scores[finite]))[:k]
    sel = finite[order]
    return candidates[sel], scores[sel].astype(np.float32)


def _build_towers(keras: Any, n_items: int, vocab: Vocabulary, max_tokens: int, p: Any) -> Any:
    """The two towers as one functional Keras model (built-in layers only: loads anywhere)."""
    layers = keras.layers
    inputs = {
        "item_id": keras.Input(shape=(), dtype="int32", name="item_id"),
        "top": keras.Input(shape=(), dtype="int32", name="top"),
        "path": keras.Input(shape=(), dtype="int32", name="path"),
        "tokens": keras.Input(shape=(max_tokens + 1,), dtype="int32", name="tokens"),
        "price": keras.Input(shape=(), dtype="int32", name="price"),
    }
    dim = int(p.embedding_dim)

    def tower(prefix: str) -> tuple[Any, Any]:
        parts = [
            layers.Embedding(n_items + 1, dim, name=f"{prefix}_id")(inputs["item_id"]),
            layers.Embedding(vocab.n_tops, dim // 2, name=f"{prefix}_top")(inputs["top"]),
            layers.Embedding(vocab.n_paths, dim, name=f"{prefix}_path")(inputs["path"]),
            layers.GlobalAveragePooling1D(name=f"{prefix}_name")(
                layers.Embedding(vocab.n_tokens, dim, mask_zero=True, name=f"{prefix}_tokens")(
                    inputs["tokens"]
                )
            ),
            layers.Embedding(vocab.n_price_bands, 8, name=f"{prefix}_price")(inputs["price"]),
        ]
        h = layers.Concatenate(name=f"{prefix}_features")(parts)
        h = layers.Dense(int(p.hidden_units), activation="relu", name=f"{prefix}_hidden")(h)
        return layers.Dense(dim, name=f"{prefix}_vector")(h), h

    q_vec, _ = tower("query")
    query = keras.Model(inputs, q_vec, name="query_tower")
    c_vec, c_hidden = tower("candidate")
    id_bias = layers.Flatten(name="candidate_id_bias_flat")(
        layers.Embedding(n_items + 1, 1, embeddings_initializer="zeros", name="candidate_id_bias")(
            inputs["item_id"]
        )
    )
    bias = layers.Add(name="candidate_bias")(
        [id_bias, layers.Dense(1, name="candidate_content_bias")(c_hidden)]
    )
    candidate = keras.Model(inputs, [c_vec, bias], name="candidate_tower")
    c_out, b_out = candidate(inputs)
    return keras.Model(
        inputs, {"query": query(inputs), "candidate": c_out, "bias": b_out}, name="crosssell_neural"
    )


class _Trainer:
    """The training step (a compiled ``tf.function``) and batched embedding."""

    def __init__(
        self,
        tf: Any,
        keras: Any,
        towers: Any,
        feats: FeatureTable,
        candidates: IntArray,
        lr: float,
    ) -> None:
        self.tf = tf
        self.query = towers.get_layer("query_tower")
        self.candidate = towers.get_layer("candidate_tower")
        self.tables = {
            "top": tf.constant(feats.tops, tf.int32),
            "path": tf.constant(feats.paths, tf.int32),
            "tokens": tf.constant(feats.tokens, tf.int32),
            "price": tf.constant(feats.prices, tf.int32),
        }
        self.candidates = tf.constant(candidates, tf.int32)
        self.optimizer = keras.optimizers.Adam(learning_rate=lr)
        self.variables = self.query.trainable_variables + self.candidate.trainable_variables
        self._step = tf.function(self._step_fn, reduce_retracing=True)

    def _inputs(self, items: Any, ids: Any) -> dict[str, Any]:
        tf = self.tf
        out = {name: tf.gather(t, items) for name, t in self.tables.items()}
        out["item_id"] = ids
        return out

    def _step_fn(self, q: Any, q_ids: Any, self_col: Any, target: Any) -> Any:
        tf = self.tf
        cand = self.candidates
        with tf.GradientTape() as tape:
            u = self.query(self._inputs(q, q_ids), training=True)
            v, b = self.candidate(self._inputs(cand, cand + 1), training=True)
            logits = tf.matmul(u, v, transpose_b=True) + tf.reshape(b, (1, -1))
            # The query itself is never recommended: its column leaves the softmax.
            is_self = tf.one_hot(self_col, tf.shape(cand)[0], on_value=True, off_value=False)
            logits = tf.where(is_self, tf.constant(-1e9, logits.dtype), logits)
            loss = tf.reduce_mean(
                tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=logits)
            )
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return loss

    def step(self, q: IntArray, q_ids: IntArray, self_col: IntArray, target: Any) -> float:
        tf = self.tf
        loss = self._step(
            tf.constant(q, tf.int32),
            tf.constant(q_ids, tf.int32),
            tf.constant(self_col, tf.int32),
            tf.constant(target, tf.float32),
        )
        return float(loss)

    def embed(self, items: IntArray, ids: IntArray, which: str) -> tuple[FloatArray, FloatArray]:
        tf = self.tf
        vecs: list[FloatArray] = []
        biases: list[FloatArray] = []
        for s in range(0, len(items), 8192):
            inp = self._inputs(
                tf.constant(items[s : s + 8192], tf.int32), tf.constant(ids[s : s + 8192], tf.int32)
            )
            if which == "query":
                vecs.append(np.asarray(self.query(inp, training=False), dtype=np.float32))
            else:
                v, b = self.candidate(inp, training=False)
                vecs.append(np.asarray(v, dtype=np.float32))
                biases.append(np.asarray(b, dtype=np.float32).ravel())
        dim = int(self.query.output.shape[-1])
        v_all = np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32)
        b_all = np.concatenate(biases) if biases else np.zeros(0, np.float32)
        return v_all, b_all


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, verbose: bool) -> Any:
    if not verbose:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc="neural: training", unit="step")


__all__ = ["FORMAT_VERSION", "ArtifactMismatchError", "NeuralRecommender"]
