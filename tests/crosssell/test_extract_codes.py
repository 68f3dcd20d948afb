"""hashed_codes: the shortcut for values stored in runs numbers them as the general path does."""

from __future__ import annotations

import numpy as np
import pytest

from crosssell.services import extract as ex


def reference_codes(h0: np.ndarray, h1: np.ndarray) -> tuple[list[int], list[int], int]:
    """Numbering by first appearance, one value at a time (the specification)."""
    seen: dict[tuple[int, int], int] = {}
    codes, first = [], []
    for pos, key in enumerate(zip(h0.tolist(), h1.tolist(), strict=True)):
        if key not in seen:
            seen[key] = len(seen)
            first.append(pos)
        codes.append(seen[key])
    return codes, first, len(seen)


def in_runs(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each value repeated 1-5 times in a row, as an order's lines are stored."""
    return np.repeat(values, rng.integers(1, 6, size=len(values)))


@pytest.mark.parametrize("seed", range(5))
def test_values_in_runs_take_the_shortcut_and_match_the_reference(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = in_runs(rng.permutation(500)[:200], rng)
    h0, h1 = values * 7919 - 3, values * 104729 + 11
    shortcut = ex._distinct_runs(h0, h1)
    assert shortcut is not None
    codes, first, n = ex.hashed_codes(h0, h1)
    assert (codes.tolist(), first.tolist(), n) == reference_codes(h0, h1)

    monkeypatch.setattr(ex, "_distinct_runs", lambda a, b: None)  # the general path
    general = ex.hashed_codes(h0, h1)
    assert general[0].tolist() == codes.tolist() and general[1].tolist() == first.tolist()


def test_a_value_in_two_runs_or_a_shared_first_hash_takes_the_general_path() -> None:
    rng = np.random.default_rng(9)
    values = in_runs(np.arange(60), rng)
    values = np.concatenate([values, [3, 3]])  # value 3 again, after others
    h0, h1 = values * 31, values * 17
    assert ex._distinct_runs(h0, h1) is None
    codes, first, n = ex.hashed_codes(h0, h1)
    assert (codes.tolist(), first.tolist(), n) == reference_codes(h0, h1)

    # two values in separate runs sharing the first hash: still told apart by the second
    h0 = np.array([5, 5, 8, 8, 8, 5], dtype=np.int64)
    h1 = np.array([1, 1, 2, 2, 2, 4], dtype=np.int64)
    assert ex._distinct_runs(h0, h1) is None
    codes, first, n = ex.hashed_codes(h0, h1)
    assert (codes.tolist(), first.tolist(), n) == ([0, 0, 1, 1, 1, 2], [0, 2, 5], 3)


def test_values_that_hardly_repeat_skip_the_shortcut() -> None:
    values = np.arange(100, dtype=np.int64)[::-1]
    assert ex._distinct_runs(values, values) is None
    codes, first, n = ex.hashed_codes(values, values)
    assert (codes.tolist(), first.tolist(), n) == reference_codes(values, values)
