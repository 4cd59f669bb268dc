"""``signscope neuron``: the single hidden neuron experiment (paper Sec. 2.3, Fig. 2a, Fig. 18)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from signscope.cli import main

torch = pytest.importorskip("torch")
neuron = pytest.importorskip("trainers.neuron")

pytestmark = pytest.mark.torch

QUADRANT_COLUMNS = [
    "method",
    "a_sign",
    "w1_sign",
    "d",
    "runs",
    "success_rate",
    "ci_low",
    "ci_high",
    "mean_rel_error",
]
# Small enough for a fast suite, large enough that d = 1 behaves as Theorem 2.1 says.
SMALL = {"samples": 400, "runs": 4, "steps": 200}


def signscope(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signscope", *args], capture_output=True, text=True, timeout=120
    )


def cell(table, method: str, a_sign: int, w1_sign: int) -> dict:
    rows = [
        r
        for r in table.to_dicts()
        if (r["method"], r["a_sign"], r["w1_sign"]) == (method, a_sign, w1_sign)
    ]
    assert len(rows) == 1
    return rows[0]


@pytest.fixture(scope="module")
def one_dimensional():
    return neuron.neuron_tables(neuron.NeuronConfig(d=1, **SMALL), per_run=True)


def test_keep_schedule_removes_the_same_fraction_down_to_one_input():
    assert neuron.keep_schedule(10, 3) == [10, 5, 2, 1]  # paper: 90% sparsity, one input left
    assert neuron.keep_schedule(5, 3) == [5, 3, 2, 1]
    assert neuron.keep_schedule(2, 3) == [2, 2, 1, 1]
    assert neuron.keep_schedule(1, 3) == [1, 1, 1, 1]
    assert neuron.keep_schedule(100, 2) == [100, 10, 1]
    with pytest.raises(ValueError):
        neuron.keep_schedule(10, 0)


def test_wilson_interval_matches_published_values():
    assert neuron.wilson_interval(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    assert neuron.wilson_interval(10, 10) == (pytest.approx(0.72247, abs=1e-5), 1.0)
    low, high = neuron.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.23659, abs=1e-5), pytest.approx(0.76341, abs=1e-5))


def test_hand_written_gradient_equals_autograd():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 50, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 50, generator=gen, dtype=torch.float64)
    a = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    reference = 0.5 * ((a[:, None] * torch.relu(torch.einsum("bnk,bk->bn", x, w)) - y) ** 2).mean(
        -1
    )
    reference.sum().backward()
    loss, grad_a, grad_w = neuron.loss_and_grad(a.detach(), w.detach(), x, y)
    torch.testing.assert_close(loss, reference.detach())
    torch.testing.assert_close(grad_a, a.grad)
    torch.testing.assert_close(grad_w, w.grad)


def test_batched_gradient_descent_equals_separate_runs():
    data = neuron.draw_run(neuron.NeuronConfig(d=3, samples=100), run=0)
    problems = [
        (data.x, data.y, *neuron.initial_params(data.w_init, s, t)) for s, t in neuron.QUADRANTS
    ]
    together = neuron.fit_gd(problems, steps=50, lr=1.5)
    for problem, (a, w) in zip(problems, together, strict=True):
        [(a_alone, w_alone)] = neuron.fit_gd([problem], steps=50, lr=1.5)
        assert a == pytest.approx(a_alone, rel=1e-12)
        torch.testing.assert_close(w, w_alone)


def test_prune_keeps_largest_magnitudes_first_index_on_ties():
    state = neuron.LevelState(np.array([0, 2, 5, 7]), 1.0, torch.tensor([0.1, -0.5, 0.3, 0.5]))
    alive, pos = neuron.prune(state, 2)
    assert alive.tolist() == [2, 7] and pos.tolist() == [1, 3]


def test_initialisation_is_balanced_with_the_requested_signs():
    w_init = torch.tensor([0.3, -0.4, 1.2])
    for a_sign, w1_sign in neuron.QUADRANTS:
        a, w = neuron.initial_params(w_init, a_sign, w1_sign)
        assert a == pytest.approx(a_sign * 1.3)  # |a(0)| = ||w(0)||
        assert torch.sign(w[0]) == w1_sign and torch.equal(w[1:], w_init[1:])


def test_d1_negative_a_never_succeeds_for_either_method(one_dimensional):
    # Theorem 2.1 / Lemma 2.2: with a(0) < 0 the univariate neuron cannot learn relu(x).
    table = one_dimensional["quadrants"]
    for method in ("imp", "lrr"):
        for w1_sign in (1, -1):
            row = cell(table, method, -1, w1_sign)
            assert row["success_rate"] == 0.0
            assert row["mean_rel_error"] > 0.9


def test_d1_positive_quadrant_succeeds_and_a_negative_w_fails(one_dimensional):
    table = one_dimensional["quadrants"]
    for method in ("imp", "lrr"):
        assert cell(table, method, 1, 1)["success_rate"] == 1.0
        assert cell(table, method, 1, -1)["success_rate"] == 0.0


def test_d1_imp_rewinds_and_lrr_continues(one_dimensional):
    # With one input nothing is pruned: IMP retrains from the same initial values on the same
    # data, so it ends exactly where the dense level did; LRR keeps training from there.
    runs = one_dimensional["runs"]
    imp = runs.filter(runs["method"] == "imp")
    assert imp["rel_error"].to_list() == imp["dense_rel_error"].to_list()
    assert imp.height == 4 * SMALL["runs"]


def test_same_seed_same_table_other_seed_other_draws():
    cfg = neuron.NeuronConfig(d=3, samples=100, runs=1, steps=50, seed=7)
    first = neuron.neuron_tables(cfg, per_run=True)["runs"]
    assert first.equals(neuron.neuron_tables(cfg, per_run=True)["runs"])
    other = neuron.draw_run(neuron.NeuronConfig(d=3, samples=100, seed=8), run=0)
    assert not torch.equal(neuron.draw_run(cfg, run=0).x, other.x)


def test_cli_json_has_the_quadrants_table(capsys):
    # In-process: a second interpreter would pay torch's import again for the same check.
    assert (
        main(
            [
                "neuron",
                "--d",
                "2",
                "--runs",
                "2",
                "--samples",
                "200",
                "--steps",
                "100",
                "--format",
                "json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["quadrants"]
    rows = data["quadrants"]
    assert len(rows) == 8
    assert all(list(row) == QUADRANT_COLUMNS for row in rows)
    assert {(r["method"], r["a_sign"], r["w1_sign"]) for r in rows} == {
        (m, a, w) for m in ("imp", "lrr") for a in (1, -1) for w in (1, -1)
    }
    assert all(
        r["d"] == 2
        and r["runs"] == 2
        and 0 <= r["ci_low"] <= r["success_rate"] <= r["ci_high"] <= 1
        for r in rows
    )


@pytest.mark.slow
def test_cli_subprocess_sweep_writes_csv_files(tmp_path):
    # Gradient descent keeps this subprocess clear of torch.optim, whose first use imports
    # torch._dynamo (seconds of CPU); LBFGS goes through the same command in-process above.
    out = tmp_path / "sweep"
    proc = signscope(
        "neuron",
        "--sweep-d",
        "1,3",
        "--runs",
        "1",
        "--samples",
        "100",
        "--steps",
        "50",
        "--optimizer",
        "gd",
        "--per-run",
        "--format",
        "csv",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    with open(out / "quadrants.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["d"] for r in rows] == ["1"] * 8 + ["3"] * 8
    with open(out / "runs.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 2 * 4  # d values x methods x quadrants x 1 run


@pytest.mark.parametrize(
    "args, message",
    [
        (["--d", "3", "--sweep-d", "1,2"], "either --d or --sweep-d"),
        (["--sweep-d", "1,x"], "--sweep-d '1,x'"),
        (["--sweep-d", "2,2"], "listed twice"),
        (["--lr", "0.5"], "--optimizer gd only"),
        (["--runs", "0"], "--runs"),
    ],
)
def test_cli_usage_errors_are_one_line(capsys, args, message):
    assert main(["neuron", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1
