"""BatchNorm gamma statistics, worked out by hand.

gamma = [-0.5, 0.0, 0.5, 1.0, 2.0]: count 5, mean 3/5 = 0.6; deviations -1.1 -0.6 -0.1 0.4 1.4,
squares sum 3.7, population std sqrt(3.7/5) = sqrt(0.74); min -0.5; quartiles by linear
interpolation at positions 1, 2, 3 of the sorted values: 0.0, 0.5, 1.0; max 2.0;
frac_zero (|g| < 1e-3) 1/5; frac_negative 1/5. Histogram bins [k/20, (k+1)/20): the values sit
in bins k = -10, 0, 10, 20, 40, so rows run from [-0.5, -0.45) to [2.0, 2.05): 51 rows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from runfactory import write_run

import signscope

GAMMA = np.array([-0.5, 0.0, 0.5, 1.0, 2.0], np.float32)


def _bn_run(path, bf16=False, gamma=GAMMA):
    state = {
        "conv.weight": np.ones((5, 2), np.float32),
        "bn.weight": gamma,
        "bn.bias": np.zeros(5, np.float32),
        "bn.running_mean": np.zeros(5, np.float32),
        "bn.running_var": np.ones(5, np.float32),
        # 1-D weight without running_var: not a BN layer
        "ln.weight": np.ones(5, np.float32),
    }
    dense = {
        "conv.weight": np.ones((5, 2), np.float32),
        "bn.weight": np.ones(5, np.float32),
        **{k: v for k, v in state.items() if k not in ("conv.weight", "bn.weight")},
    }
    return write_run(path, [dense, state], state, bf16=bf16)


@pytest.mark.parametrize("bf16", [False, True])
def test_bn_stats_by_hand(tmp_path, bf16):
    t = signscope.open_run(_bn_run(tmp_path / "r", bf16=bf16)).bn()
    assert t["bn"].columns == [
        "run",
        "level",
        "layer",
        "count",
        "mean",
        "std",
        "min",
        "q25",
        "median",
        "q75",
        "max",
        "frac_zero",
        "frac_negative",
    ]
    assert t["bn"].height == 1
    row = t["bn"].row(0, named=True)
    assert (row["level"], row["layer"], row["count"]) == (1, "bn", 5)
    assert row["mean"] == pytest.approx(0.6)
    assert row["std"] == pytest.approx(math.sqrt(0.74))
    assert [row[k] for k in ("min", "q25", "median", "q75", "max")] == pytest.approx(
        [-0.5, 0.0, 0.5, 1.0, 2.0]
    )
    assert row["frac_zero"] == pytest.approx(0.2)
    assert row["frac_negative"] == pytest.approx(0.2)


def test_bn_histogram_by_hand(tmp_path):
    hist = signscope.open_run(_bn_run(tmp_path / "r")).bn()["bn_hist"]
    assert hist.columns == ["run", "level", "layer", "bin_low", "bin_high", "count"]
    assert hist.height == 51
    assert hist["count"].sum() == 5
    occupied = [(r["bin_low"], r["bin_high"]) for r in hist.iter_rows(named=True) if r["count"]]
    assert occupied == [(-0.5, -0.45), (0.0, 0.05), (0.5, 0.55), (1.0, 1.05), (2.0, 2.05)]
    assert hist["bin_low"].to_list()[:2] == [-0.5, -0.45]


def test_bn_level_choice(tmp_path):
    run = signscope.open_run(_bn_run(tmp_path / "r"))
    row = run.bn(level=0)["bn"].row(0, named=True)
    assert (row["level"], row["mean"], row["std"], row["frac_zero"]) == (0, 1.0, 0.0, 0.0)
    hist = run.bn(level=0)["bn_hist"]
    assert [(r["bin_low"], r["count"]) for r in hist.iter_rows(named=True)] == [(1.0, 5)]


def test_run_without_bn_gives_empty_frames_with_columns(tmp_path):
    path = write_run(
        tmp_path / "r",
        [{"fc.weight": np.ones((2, 2), np.float32)}],
        {"fc.weight": np.ones((2, 2), np.float32)},
    )
    t = signscope.open_run(path).bn()
    assert t["bn"].height == 0 and "frac_negative" in t["bn"].columns
    assert t["bn_hist"].height == 0 and t["bn_hist"].columns[-1] == "count"


def test_nan_gamma_is_an_error(tmp_path):
    gamma = GAMMA.copy()
    gamma[2] = np.nan
    run = signscope.open_run(_bn_run(tmp_path / "r", gamma=gamma))
    with pytest.raises(
        signscope.SignscopeError, match=r"level_001.safetensors: tensor 'bn.weight' holds NaN"
    ):
        run.bn()
