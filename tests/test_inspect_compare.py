"""Mask overlap and sign agreement of two hand-made runs; numbers worked out by hand.

One level, two prunable tensors of 4 weights each:

    a.weight   mask A [1 1 0 0]   mask B [1 1 0 0]   -> |A∩B| 2, |A∪B| 2, Jaccard 1
               chance: k_a = k_b = 2, n = 4: E∩ = 2·2/4 = 1, E∪ = 2+2-1 = 3 -> 1/3
    b.weight   mask A [1 0 0 0]   mask B [0 1 1 0]   -> |A∩B| 0, |A∪B| 3, Jaccard 0
               chance: k_a = 1, k_b = 2: E∩ = 0.5, E∪ = 2.5 -> 0.2
    global     |A∩B| 2, |A∪B| 5, Jaccard 0.4; chance (1 + 0.5) / (3 + 2.5) = 3/11

Weights (alive positions): a.weight A [ 2 -1 . .]  B [ 5  3 . .]  -> a0 agrees, a1 does not
                           b.weight A [ 0 . . .]   B [ . -1 4 .]  -> nothing alive in both
so sign agreement is 1 of 2 (0.5) for a.weight and globally, null for b.weight.
"""

from __future__ import annotations

import numpy as np
import pytest
from runfactory import random_run, write_run

import signscope

A = np.array


def _run(path, a_mask, a_w, b_mask, b_w, method):
    init = {"a.weight": np.ones((2, 2), np.float32), "b.weight": np.ones((4, 1), np.float32)}
    level = {
        "a.weight": A(a_w, np.float32).reshape(2, 2),
        "b.weight": A(b_w, np.float32).reshape(4, 1),
    }
    masks = [{"a.weight": A(a_mask).reshape(2, 2), "b.weight": A(b_mask).reshape(4, 1)}]
    return write_run(path, [level], init, masks=masks, method=method)


@pytest.fixture
def pair(tmp_path):
    a = _run(tmp_path / "A", [1, 1, 0, 0], [2, -1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], "lrr")
    b = _run(tmp_path / "B", [1, 1, 0, 0], [5, 3, 0, 0], [0, 1, 1, 0], [0, -1, 4, 0], "imp")
    return a, b


def test_masks_by_hand(pair):
    a, b = pair
    df = signscope.masks(a, b, per_layer=True)
    assert df.columns == [
        "run_a",
        "run_b",
        "level",
        "layer",
        "intersection",
        "union",
        "jaccard",
        "jaccard_chance",
    ]
    got = {r["layer"]: r for r in df.iter_rows(named=True)}
    assert (got["*"]["intersection"], got["*"]["union"]) == (2, 5)
    assert got["*"]["jaccard"] == pytest.approx(0.4)
    assert got["*"]["jaccard_chance"] == pytest.approx(3 / 11)
    assert (got["a.weight"]["intersection"], got["a.weight"]["union"]) == (2, 2)
    assert got["a.weight"]["jaccard"] == 1.0
    assert got["a.weight"]["jaccard_chance"] == pytest.approx(1 / 3)
    assert (got["b.weight"]["intersection"], got["b.weight"]["union"]) == (0, 3)
    assert got["b.weight"]["jaccard"] == 0.0
    assert got["b.weight"]["jaccard_chance"] == pytest.approx(0.2)
    assert got["*"]["run_a"] == str(a) and got["*"]["run_b"] == str(b)


def test_masks_global_only_by_default(pair):
    df = signscope.masks(*pair)
    assert df["layer"].to_list() == ["*"]


def test_signs_by_hand(pair):
    a, b = pair
    df = signscope.signs(a, b, per_layer=True)
    assert df.columns == ["run_a", "run_b", "level", "layer", "both_alive", "agree", "agreement"]
    got = {
        r["layer"]: (r["both_alive"], r["agree"], r["agreement"]) for r in df.iter_rows(named=True)
    }
    assert got == {"*": (2, 1, 0.5), "a.weight": (2, 1, 0.5), "b.weight": (0, 0, None)}


def test_alive_zero_agrees_only_with_zero(tmp_path):
    # a.weight alive everywhere; values A [0 -1 2 0] B [0 -3 -2 1]:
    # a0 both zero (agree), a1 both negative (agree), a2 +/- (no), a3 0/+ (no) -> 2 of 4.
    a = _run(tmp_path / "A", [1, 1, 1, 1], [0, -1, 2, 0], [0, 0, 0, 0], [0] * 4, "lrr")
    b = _run(tmp_path / "B", [1, 1, 1, 1], [0, -3, -2, 1], [0, 0, 0, 0], [0] * 4, "lrr")
    row = signscope.signs(a, b).row(0, named=True)
    assert (row["both_alive"], row["agree"], row["agreement"]) == (4, 2, 0.5)


def test_levels_compared_are_those_in_both(tmp_path):
    a = random_run(tmp_path / "a", seed=1, n_levels=4)
    b = random_run(tmp_path / "b", seed=2, n_levels=2)
    assert signscope.masks(a, b)["level"].to_list() == [0, 1]
    assert signscope.signs(signscope.open_run(a), b)["level"].to_list() == [0, 1]


def test_different_architectures_are_refused(tmp_path):
    a = random_run(tmp_path / "a", seed=1)
    b = random_run(
        tmp_path / "b", seed=1, shapes={"conv1.weight": (4, 1, 3, 3), "fc.weight": (10, 8)}
    )
    with pytest.raises(
        signscope.SignscopeError, match=r"different architectures.*'fc.weight' is 10x16 vs 10x8"
    ):
        signscope.masks(a, b)
    with pytest.raises(signscope.SignscopeError, match=r"different architectures"):
        signscope.signs(a, b)
