"""Accuracy vs density with Student-t intervals, worked out by hand.

Three LRR seeds with level-0 accuracies 0.90, 0.92, 0.94: mean 0.92, sample std 0.02,
t(0.975, 2 df) = 4.302653, half width 4.302653 · 0.02 / sqrt(3) = 0.0496828.
One IMP seed: replicates 1, no interval.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from runfactory import write_run

import signscope
from signscope.metrics.accuracy import mean_ci, t_quantile

W = {"fc.weight": np.ones((2, 2), np.float32)}
HALF = 4.302653 * 0.02 / math.sqrt(3)


@pytest.mark.parametrize(
    "df,want",
    [(1, 12.706205), (2, 4.302653), (4, 2.776445), (10, 2.228139), (30, 2.042272), (200, 1.971896)],
)
def test_t_quantile(df, want):
    assert t_quantile(0.975, df) == pytest.approx(want, abs=2e-6)


def test_mean_ci_edges():
    assert mean_ci([]) == (None, None, None)
    assert mean_ci([0.5]) == (0.5, None, None)
    mean, lo, hi = mean_ci([0.9, 0.92, 0.94])
    assert (mean, lo, hi) == pytest.approx((0.92, 0.92 - HALF, 0.92 + HALF))


def _run(path, method, seed, accs, **config):
    masks = [{"fc.weight": np.array([[1, 1], [1, 1]])}, {"fc.weight": np.array([[1, 1], [1, 0]])}]
    return write_run(
        path,
        [W, W][: len(accs)],
        W,
        masks=masks[: len(accs)],
        method=method,
        seed=seed,
        test_acc=accs,
        config=config,
    )


def test_acc_by_hand(tmp_path):
    runs = [
        _run(tmp_path / f"lrr{s}", "lrr", s, [a, a - 0.1]) for s, a in enumerate([0.90, 0.92, 0.94])
    ]
    runs.append(_run(tmp_path / "imp0", "imp", 0, [0.91, 0.8]))
    t = signscope.acc(runs)
    acc = t["accuracy"]
    assert acc.columns == [
        "method",
        "level",
        "density",
        "sparsity",
        "replicates",
        "mean",
        "ci_low",
        "ci_high",
    ]
    lrr0 = acc.filter((acc["method"] == "lrr") & (acc["level"] == 0)).row(0, named=True)
    assert lrr0["replicates"] == 3
    assert lrr0["mean"] == pytest.approx(0.92)
    assert (lrr0["ci_low"], lrr0["ci_high"]) == pytest.approx((0.92 - HALF, 0.92 + HALF), abs=1e-6)
    assert (lrr0["density"], lrr0["sparsity"]) == (1.0, 0.0)
    lrr1 = acc.filter((acc["method"] == "lrr") & (acc["level"] == 1)).row(0, named=True)
    assert (lrr1["density"], lrr1["sparsity"]) == (0.75, 0.25)
    imp = acc.filter(acc["method"] == "imp")
    assert imp["replicates"].to_list() == [1, 1]
    assert imp["mean"].to_list() == pytest.approx([0.91, 0.8])
    assert imp["ci_low"].to_list() == [None, None]
    runs_df = t["runs"]
    assert runs_df.columns == ["run", "method", "seed", "level", "density", "test_acc"]
    assert runs_df.height == 8
    assert sorted(set(runs_df["seed"].to_list())) == [0, 1, 2]


def test_same_method_different_config_are_separate_groups(tmp_path):
    a = _run(tmp_path / "a", "lrr", 0, [0.9], dataset="cifar10")
    b = _run(tmp_path / "b", "lrr", 0, [0.7], dataset="cifar100")
    acc = signscope.acc([a, b])["accuracy"]
    assert acc["method"].to_list() == ["lrr [dataset=cifar10]", "lrr [dataset=cifar100]"]


def test_seeds_that_ran_with_other_threads_or_workers_are_one_group(tmp_path):
    # How a run was executed is no part of the experiment: these are three seeds of one.
    runs = [
        _run(tmp_path / "a", "lrr", 0, [0.90], threads=1, data_workers=8, device="cpu"),
        _run(tmp_path / "b", "lrr", 1, [0.92], threads=4, data_workers=0, device="cuda"),
        _run(tmp_path / "c", "lrr", 2, [0.94], threads=0, data_workers=2, eval_every=5),
    ]
    acc = signscope.acc(runs)["accuracy"].row(0, named=True)
    assert (acc["method"], acc["replicates"]) == ("lrr", 3)
    assert acc["mean"] == pytest.approx(0.92)


def test_the_grouping_follows_the_marks_of_the_training_settings():
    from signscope.metrics.accuracy import NOT_IDENTITY
    from trainers.config import FIELDS, RESUMABLE_CHANGES

    # What may change on --resume only changes how or where a run was made, except the number
    # of levels, which extends the same experiment but is part of what it is.
    assert RESUMABLE_CHANGES - {"levels"} <= NOT_IDENTITY
    assert "levels" not in NOT_IDENTITY
    assert {"seed", "threads", "data_workers", "imported_from"} <= NOT_IDENTITY
    assert {"method", "lr", "epochs", "dataset", "model"}.isdisjoint(NOT_IDENTITY)
    assert NOT_IDENTITY - set(FIELDS) == {"imported_from", "out", "resume", "force"}


def test_unknown_accuracy_is_null(tmp_path):
    path = write_run(tmp_path / "r", [W], W, method="imp")
    acc = signscope.acc([path])["accuracy"].row(0, named=True)
    assert (acc["replicates"], acc["mean"], acc["ci_low"]) == (0, None, None)
