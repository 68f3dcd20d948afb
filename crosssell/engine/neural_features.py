"""Content features for the neural strategy: integer tables built from ``ItemContent``.

Pure numpy, no TensorFlow, so the tables can be built, saved and checked without the [deep]
extra. Vocabularies are learned from the items that have training purchases only: a token seen
only on products nobody bought would get an embedding that training never touched.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crosssell.engine.base import IntArray, ItemContent

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

#: Token id 1 is on every item: a masked average over names needs at least one token.
ALWAYS_TOKEN = 1


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (letters and digits, underscores split words)."""
    return _TOKEN.findall(text.lower())


def category_levels(path: str) -> tuple[str, str]:
    """The top level and the full normalised path of a category such as ``"Photo > Cameras"``."""
    parts = [p.strip().lower() for p in path.split(">") if p.strip()]
    if not parts:
        return "", ""
    return parts[0], " > ".join(parts)


def item_index_hash(item_ids: Sequence[object]) -> str:
    """SHA-256 of the item index (position -> id), to tell artifacts of other catalogs apart."""
    h = hashlib.sha256()
    for item in item_ids:
        h.update(str(item).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Vocabulary:
    """The learned vocabularies; id 0 always means unknown (and padding for tokens)."""

    tops: npt.NDArray[np.str_]
    paths: npt.NDArray[np.str_]
    tokens: npt.NDArray[np.str_]
    price_edges: npt.NDArray[np.float64]

    @property
    def n_tops(self) -> int:
        return len(self.tops) + 1

    @property
    def n_paths(self) -> int:
        return len(self.paths) + 1

    @property
    def n_tokens(self) -> int:
        # 0 is padding, 1 is the always-present token, real tokens start at 2.
        return len(self.tokens) + 2

    @property
    def n_price_bands(self) -> int:
        # 0 is "unknown price", then one band per interval between edges.
        return len(self.price_edges) + 2


@dataclass(frozen=True)
class FeatureTable:
    """One row per item: top category, full category path, name tokens and price band ids."""

    tops: IntArray
    paths: IntArray
    tokens: IntArray
    prices: IntArray

    @property
    def n_items(self) -> int:
        return len(self.tops)


def learn_vocabulary(
    content: ItemContent,
    fit_items: npt.NDArray[np.bool_],
    min_token_count: int = 2,
    max_vocabulary: int = 20000,
    n_price_bands: int = 8,
) -> Vocabulary:
    """Learn vocabularies from the content of the items where ``fit_items`` is true.

    Parameters
    ----------
    content
        The content of every item of the index.
    fit_items
        Boolean mask: the items whose content the vocabularies may be learned from.
    min_token_count
        A name token must occur on at least this many such items.
    max_vocabulary
        Keep at most this many tokens (the most frequent; ties by the token itself).
    n_price_bands
        Number of price bands (quantiles of the known prices).
    """
    tops: set[str] = set()
    paths: set[str] = set()
    counts: Counter[str] = Counter()
    for i in np.flatnonzero(fit_items):
        top, path = category_levels(content.categories[i])
        if top:
            tops.add(top)
            paths.add(path)
        counts.update(set(tokenize(content.names[i])))
    frequent = sorted(
        (t for t, c in counts.items() if c >= min_token_count), key=lambda t: (-counts[t], t)
    )[:max_vocabulary]
    prices = np.asarray(content.prices, dtype=np.float64)[fit_items]
    prices = prices[np.isfinite(prices)]
    if len(prices) >= n_price_bands and n_price_bands > 1:
        qs = np.linspace(0.0, 1.0, n_price_bands + 1)[1:-1]
        edges = np.unique(np.quantile(prices, qs))
    else:
        edges = np.zeros(0, dtype=np.float64)
    return Vocabulary(
        tops=np.array(sorted(tops), dtype=np.str_),
        paths=np.array(sorted(paths), dtype=np.str_),
        tokens=np.array(frequent, dtype=np.str_),
        price_edges=edges.astype(np.float64),
    )


def build_features(content: ItemContent, vocab: Vocabulary, max_tokens: int = 8) -> FeatureTable:
    """Map every item's content to integer ids with ``vocab`` (unknown values map to 0)."""
    n = len(content.names)
    top_id = {t: i + 1 for i, t in enumerate(vocab.tops.tolist())}
    path_id = {t: i + 1 for i, t in enumerate(vocab.paths.tolist())}
    tok_id = {t: i + 2 for i, t in enumerate(vocab.tokens.tolist())}
    tops = np.zeros(n, dtype=np.int64)
    paths = np.zeros(n, dtype=np.int64)
    tokens = np.zeros((n, max_tokens + 1), dtype=np.int64)
    tokens[:, 0] = ALWAYS_TOKEN
    for i in range(n):
        top, path = category_levels(content.categories[i])
        tops[i] = top_id.get(top, 0)
        paths[i] = path_id.get(path, 0)
        seen: list[int] = []
        for tok in tokenize(content.names[i]) if max_tokens > 0 else []:
            j = tok_id.get(tok, 0)
            if j and j not in seen:
                seen.append(j)
                if len(seen) == max_tokens:
                    break
        tokens[i, 1 : 1 + len(seen)] = seen
    prices = np.asarray(content.prices, dtype=np.float64)
    bands = np.zeros(n, dtype=np.int64)
    known = np.isfinite(prices)
    bands[known] = np.searchsorted(vocab.price_edges, prices[known], side="right") + 1
    return FeatureTable(tops, paths, tokens, bands)
