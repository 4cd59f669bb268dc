"""The paper's mask/sign experiments in the trainer: --mask-from, --signs-from,
--perturb-signs, --prune random, --criterion snip|synflow. Runs are tiny IMP/LRR runs on the
bundled digits, read back with plain safetensors; the scores are checked on a two-layer linear
network small enough to work out by hand."""

import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_mlp_train
from rich.console import Console
from safetensors import safe_open
from safetensors.numpy import load_file

from signscope.errors import SignscopeError, UsageError
from signscope.runformat import REWIND_FILE, level_filename

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402

from trainers.config import resolve_config  # noqa: E402
from trainers.progress import Reporter  # noqa: E402
from trainers.pruning import level_start_state, target_alive  # noqa: E402
from trainers.pruning_criteria import balanced_counts, snip_scores, synflow_scores  # noqa: E402
from trainers.train import train  # noqa: E402
from trainers.variants import sign_flips  # noqa: E402

LEVELS = 3
# The demo preset (digits) on the MLP, two epochs per level so that the rewind point (end of
# epoch 1) differs from the init and from the end of level 0.
SMALL = dict(
    model="mlp",
    levels=LEVELS,
    epochs=2,
    lr_warmup_epochs=1,
    rewind_epoch=1,
    batch_size=128,
    device="cpu",
)
PRUNABLE = ("fc1.weight", "fc2.weight", "fc.weight")


def small_config(**kw):
    return resolve_config("demo", {**SMALL, **kw})


def silent() -> Reporter:
    return Reporter(Console(file=io.StringIO()))


def run(cfg, out, starts=None):
    def record(level, model):
        starts[level] = {k: v.detach().cpu().clone().numpy() for k, v in model.state_dict().items()}

    return train(cfg, out, reporter=silent(), on_level_start=None if starts is None else record)


def masks_of(run_dir, level):
    tensors = load_file(run_dir / level_filename(level))
    return {n: tensors[f"mask/{n}"].astype(bool) for n in PRUNABLE}


def weights_of(run_dir, level):
    tensors = load_file(run_dir / level_filename(level))
    return {n: tensors[n] for n in PRUNABLE}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Plain IMP and LRR runs of one seed, with the states every level started from."""
    root = tmp_path_factory.mktemp("variants")
    out, starts = {}, {}
    for method in ("imp", "lrr"):
        starts[method] = {}
        out[method] = run(small_config(method=method), root / method, starts[method])
    return out, starts


# --------------------------------------------------------------------------- --mask-from


@pytest.mark.parametrize("method, source", [("lrr", "imp"), ("imp", "lrr")])
def test_mask_from_trains_with_the_other_runs_mask_at_every_level(base, tmp_path, method, source):
    runs, _ = base
    out = run(small_config(method=method, mask_from=str(runs[source])), tmp_path / "run")
    for level in range(LEVELS):
        ours, theirs = masks_of(out, level), masks_of(runs[source], level)
        assert all(np.array_equal(ours[n], theirs[n]) for n in PRUNABLE), level
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["mask_from"] == str(runs[source])
    assert manifest["method"] == f"{method}+{source}-mask"
    # The masks are the other run's, the weights this run's own: LRR on the IMP mask is not IMP.
    assert not np.array_equal(
        weights_of(out, 2)["fc1.weight"], weights_of(runs[source], 2)["fc1.weight"]
    )


def test_the_other_runs_label_is_read_once_per_training(base, tmp_path, monkeypatch):
    import trainers.config

    runs, _ = base
    original, reads = trainers.config.source_label, []

    def counted(path):
        reads.append(path)
        return original(path)

    monkeypatch.setattr(trainers.config, "source_label", counted)
    out = run(small_config(method="lrr", mask_from=str(runs["imp"])), tmp_path / "run")
    assert reads == [str(runs["imp"])]  # not once per level file and run.json write
    with safe_open(out / level_filename(LEVELS - 1), "np") as f:
        assert f.metadata()["method"] == "lrr+imp-mask"


def test_mask_from_refuses_a_shorter_run_or_another_architecture(base, tmp_path):
    runs, _ = base
    with pytest.raises(SignscopeError, match=r"--mask-from .*has 3 levels.*needs 5"):
        run(small_config(method="lrr", levels=5, mask_from=str(runs["imp"])), tmp_path / "long")
    with pytest.raises(SignscopeError, match=r"--signs-from .*different architecture"):
        run(
            small_config(method="imp", model="convnet", signs_from=str(runs["lrr"])),
            tmp_path / "conv",
        )
    with pytest.raises(SignscopeError, match="no such file"):
        run(small_config(method="imp", mask_from=str(tmp_path / "missing")), tmp_path / "none")
    # The checks come before anything is written: no half-made run is left behind.
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- --signs-from


def test_signs_from_starts_every_level_with_the_runs_signs_and_mask_and_rewind_magnitudes(
    base, tmp_path
):
    runs, _ = base
    starts = {}
    out = run(
        small_config(method="imp", signs_from=str(runs["lrr"])), tmp_path / "imp-signs", starts
    )
    rewind = load_file(out / REWIND_FILE)
    assert rewind.keys() == load_file(runs["lrr"] / REWIND_FILE).keys()
    for level in range(1, LEVELS):
        mask, theirs = masks_of(runs["lrr"], level), weights_of(runs["lrr"], level)
        assert all(np.array_equal(masks_of(out, level)[n], mask[n]) for n in PRUNABLE)
        for n in PRUNABLE:
            start, m = starts[level][n], mask[n]
            assert (start[~m] == 0).all()
            assert np.array_equal(np.sign(start[m]), np.sign(theirs[n][m])), (level, n)
            assert np.array_equal(np.abs(start[m]), np.abs(rewind[n][m])), (level, n)
        # Everything else follows --method imp: rewound with the weights.
        assert np.array_equal(starts[level]["bn1.weight"], rewind["bn1.weight"])
    assert json.loads((out / "run.json").read_text())["method"] == "imp+lrr-mask+lrr-sign"


def test_a_zero_sign_keeps_the_rewind_value_and_flips_come_last():
    rewind = {"w": torch.tensor([1.0, -2.0, 3.0, -4.0]), "b": torch.tensor([5.0])}
    prev = {"w": torch.tensor([9.0, 9.0, 9.0, 9.0]), "b": torch.tensor([6.0])}
    masks = {"w": torch.tensor([True, True, True, False])}
    signs = {"w": torch.tensor([-1.0, 0.0, 1.0, 1.0])}
    flips = {"w": torch.tensor([False, False, True, False])}
    start = level_start_state(
        "lrr", prev_state=prev, rewind_state=rewind, masks=masks, signs=signs, flips=flips
    )
    assert start["w"].tolist() == [-1.0, -2.0, -3.0, 0.0]
    assert start["b"].tolist() == [6.0]  # lrr: the rest continues from the previous level


# --------------------------------------------------------------------------- --perturb-signs


@pytest.mark.parametrize("method", ["lrr", "imp"])
def test_perturb_signs_flips_the_fraction_in_every_layer_right_after_pruning(
    base, tmp_path, method
):
    runs, base_starts = base
    starts = {}
    cfg = small_config(method=method, perturb_signs=0.3, perturb_at_level=1)
    out = run(cfg, tmp_path / "perturbed", starts)
    before = base_starts[method][1]  # the same seed: identical up to the start of level 1
    mask = masks_of(runs[method], 1)
    assert all(np.array_equal(masks_of(out, 1)[n], mask[n]) for n in PRUNABLE)  # pruning came first
    for n in PRUNABLE:
        alive = int(mask[n].sum())
        flipped = np.sign(starts[1][n]) != np.sign(before[n])
        assert not flipped[~mask[n]].any()
        assert abs(int(flipped.sum()) - 0.3 * alive) <= 1, n
        assert np.array_equal(np.abs(starts[1][n]), np.abs(before[n]))
    others = [k for k in before if k not in PRUNABLE]
    assert all(np.array_equal(starts[1][k], before[k]) for k in others)
    assert json.loads((out / "run.json").read_text())["config"]["perturb_signs"] == 0.3


def test_sign_flips_round_per_layer_and_depend_on_the_seed_only():
    masks = {
        "a": torch.ones(10, dtype=torch.bool),
        "b": torch.tensor([True] * 5 + [False] * 5),
        "c": torch.zeros(4, dtype=torch.bool),
    }
    flips = sign_flips(masks, 0.3, torch.Generator().manual_seed(1))
    assert [int(flips[n].sum()) for n in masks] == [3, 2, 0]  # 3.0, 1.5 -> 2 (half up), 0
    assert not flips["b"][5:].any()
    again = sign_flips(masks, 0.3, torch.Generator().manual_seed(1))
    assert all(torch.equal(flips[n], again[n]) for n in masks)


# --------------------------------------------------------------------------- --prune random


def test_balanced_counts_are_equal_where_the_sizes_allow():
    assert balanced_counts([100, 100, 100], 150) == [50, 50, 50]
    assert balanced_counts([10, 100, 100], 150) == [10, 70, 70]
    assert balanced_counts([10, 100, 50], 151) == [10, 91, 50]
    assert balanced_counts([10, 100, 100], 151) == [
        10,
        71,
        70,
    ]  # the spare weight: largest layer first
    assert balanced_counts([10, 20], 30) == [10, 20]
    assert balanced_counts([10, 20], 0) == [0, 0]
    sizes = [7, 300, 64, 64, 1000]
    previous = sizes
    for n_keep in range(sum(sizes), -1, -37):
        counts = balanced_counts(sizes, n_keep)
        assert sum(counts) == n_keep
        assert all(
            c <= p for c, p in zip(counts, previous, strict=True)
        )  # nested levels are possible
        uncapped = [c for c, s in zip(counts, sizes, strict=True) if c < s]
        assert not uncapped or max(uncapped) - min(uncapped) <= 1
        previous = counts


def test_prune_random_keeps_equal_counts_per_layer_nested_and_seeded(tmp_path):
    # Prune half per level so that the two large layers are not capped: fc (1000 weights) is.
    cfg = small_config(method="lrr", prune="random", prune_fraction=0.5)
    out = run(cfg, tmp_path / "rand")
    sizes = {n: m.size for n, m in masks_of(out, 0).items()}
    total = sum(sizes.values())
    for level in range(1, LEVELS):
        masks, prev = masks_of(out, level), masks_of(out, level - 1)
        counts = {n: int(masks[n].sum()) for n in PRUNABLE}
        assert sum(counts.values()) == target_alive(total, 0.5, level)
        assert counts["fc.weight"] == sizes["fc.weight"]
        assert abs(counts["fc1.weight"] - counts["fc2.weight"]) <= 1, counts
        assert all((masks[n] <= prev[n]).all() for n in PRUNABLE)  # pruned weights stay pruned
    assert json.loads((out / "run.json").read_text())["method"] == "lrr-rand"
    other = run(
        small_config(method="imp", prune="random", prune_fraction=0.5, levels=2), tmp_path / "imp"
    )
    same = masks_of(other, 1)  # the same seed and level: the same random masks for IMP-rand
    assert all(np.array_equal(same[n], masks_of(out, 1)[n]) for n in PRUNABLE)
    seed1 = run(
        small_config(method="imp", prune="random", prune_fraction=0.5, levels=2, seed=1),
        tmp_path / "seed1",
    )
    assert not np.array_equal(masks_of(seed1, 1)["fc1.weight"], same["fc1.weight"])


# --------------------------------------------------------------------------- SNIP and SynFlow


def two_layer_net():
    """y = W2 W1 x with W1 = [[1, -2], [3, 0.5]] and W2 = [[2, -1], [0.5, 1]]."""
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
        net[1].weight.copy_(torch.tensor([[2.0, -1.0], [0.5, 1.0]]))
    return net


NAMES = ["0.weight", "1.weight"]


def test_snip_scores_by_hand():
    # x = (1, 1), class 0: h = W1 x = (-1, 3.5), z = W2 h = (-5.5, 3). With p1 = softmax(z)_1,
    # dL/dz = (-p1, p1); dL/dW2 = dL/dz h^T = p1 [[1, -3.5], [-1, 3.5]];
    # dL/dW1 = (W2^T dL/dz) x^T = p1 [[-1.5, -1.5], [2, 2]]. SNIP = |W * dL/dW|.
    net = two_layer_net()
    p1 = 1 / (1 + math.exp(-8.5))
    scores = snip_scores(net, torch.tensor([[1.0, 1.0]]), torch.tensor([0]), NAMES)
    np.testing.assert_allclose(
        scores["0.weight"].numpy(), p1 * np.array([[1.5, 3.0], [6.0, 1.0]]), rtol=1e-6
    )
    np.testing.assert_allclose(
        scores["1.weight"].numpy(), p1 * np.array([[2.0, 3.5], [0.5, 3.5]]), rtol=1e-6
    )
    assert net[0].weight.grad is None  # the model is left as it was


def test_synflow_scores_by_hand():
    # |W1| = [[1, 2], [3, .5]], |W2| = [[2, 1], [.5, 1]], input (1, 1): h = |W1| 1 = (3, 3.5) and
    # R = 1^T |W2| h. dR/d|W1|_jk = (column sum j of |W2|) = (2.5, 2); dR/d|W2|_ij = h_j.
    # Scores |W| * dR/d|W|, divided by their maximum (6).
    net = two_layer_net()
    scores = synflow_scores(net, (2,), NAMES)
    np.testing.assert_allclose(
        scores["0.weight"].numpy(), np.array([[2.5, 5.0], [6.0, 1.0]]) / 6, rtol=1e-6
    )
    np.testing.assert_allclose(
        scores["1.weight"].numpy(), np.array([[6.0, 3.5], [1.5, 3.5]]) / 6, rtol=1e-6
    )
    assert net[0].weight[0, 1].item() == -2.0  # signs untouched: SynFlow works on a copy


def test_synflow_uses_batchnorm_in_eval_mode_with_absolute_statistics():
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(-2.0)
        net[1].weight.fill_(-3.0)
        net[1].bias.fill_(0.0)
        net[1].running_mean.fill_(-1.0)
        net[1].running_var.fill_(4.0 - 1e-5)  # sqrt(var + eps) = 2
        net[2].weight.fill_(5.0)
    net.train()
    scores = synflow_scores(net, (1,), NAMES[:1] + ["2.weight"])
    # R = 5 * 3 * (2x - 1) / 2 at x = 1; dR/dw0 = 5 * 3 / 2 = 7.5 -> score 15;
    # dR/dw2 = 3 * (2 - 1) / 2 = 1.5 -> score 7.5; divided by the maximum.
    assert scores["0.weight"].item() == pytest.approx(1.0)
    assert scores["2.weight"].item() == pytest.approx(0.5)
    assert net.training


@pytest.mark.parametrize("criterion", ["snip", "synflow"])
def test_snip_and_synflow_prune_iteratively_to_the_target_density(base, tmp_path, criterion):
    runs, _ = base
    out = run(small_config(method="lrr", criterion=criterion), tmp_path / criterion)
    total = sum(m.size for m in masks_of(out, 0).values())
    for level in range(1, LEVELS):
        masks, prev = masks_of(out, level), masks_of(out, level - 1)
        assert sum(int(m.sum()) for m in masks.values()) == target_alive(total, 0.2, level)
        assert all((masks[n] <= prev[n]).all() for n in PRUNABLE)
    magnitude = masks_of(runs["lrr"], 1)
    assert any(not np.array_equal(masks_of(out, 1)[n], magnitude[n]) for n in PRUNABLE)
    with safe_open(out / level_filename(1), "np") as fh:
        assert fh.metadata()["method"] == f"lrr-{criterion}"


# --------------------------------------------------------------------------- config and CLI


def test_options_that_cannot_go_together_are_usage_errors():
    with pytest.raises(UsageError, match="--criterion snip applies to --prune global"):
        small_config(prune="random", criterion="snip")
    with pytest.raises(UsageError, match="either --mask-from or --signs-from"):
        small_config(mask_from="a", signs_from="b")
    with pytest.raises(UsageError, match="nothing is pruned"):
        small_config(mask_from="a", prune="random")
    with pytest.raises(UsageError, match="needs --perturb-at-level"):
        small_config(perturb_signs=0.3)
    with pytest.raises(UsageError, match="needs --perturb-signs"):
        small_config(perturb_at_level=1)
    with pytest.raises(SignscopeError, match="1..2"):
        small_config(perturb_signs=0.3, perturb_at_level=3)
    with pytest.raises(SignscopeError, match="fraction"):
        small_config(perturb_signs=1.5, perturb_at_level=1)
    with pytest.raises(SignscopeError, match="--criterion 'random'"):
        small_config(criterion="random")
    assert small_config(method="lrr", bn_rewind=True, prune="random").label == "lrr-rand+bn-rewind"
    assert small_config(method="imp", criterion="synflow").label == "imp-synflow"
    assert small_config(method="lrr", perturb_signs=0.8, perturb_at_level=2).label == "lrr+perturb"


def signscope(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "signscope", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_runs_a_variant_and_fails_with_one_error_line(base, tmp_path):
    runs, _ = base
    tiny = [
        *tiny_mlp_train(),
        "--device",
        "cpu",
        "--quiet",
    ]
    ok = signscope(
        *tiny,
        "--method",
        "lrr",
        "--mask-from",
        runs["imp"],
        "--perturb-signs",
        "0.5",
        "--perturb-at-level",
        "1",
        "--out",
        tmp_path / "ok",
    )
    assert ok.returncode == 0, ok.stderr
    config = json.loads((tmp_path / "ok" / "run.json").read_text())["config"]
    assert (config["mask_from"], config["perturb_signs"], config["perturb_at_level"]) == (
        str(runs["imp"]),
        0.5,
        1,
    )

    bad = signscope(*tiny, "--mask-from", tmp_path / "nowhere", "--out", tmp_path / "bad")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: --mask-from: ") and "no such file" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_cli_usage_errors_exit_with_status_2(capsys, tmp_path):
    from signscope.cli import main

    tiny = ["train", "--preset", "demo", "--model", "mlp", "--out", str(tmp_path / "bad")]
    assert main([*tiny, "--prune", "random", "--criterion", "synflow"]) == 2
    assert capsys.readouterr().err.startswith("error: --prune random draws masks at random")
    assert main([*tiny, "--perturb-signs", "0.3"]) == 2
    assert "--perturb-at-level" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_variant_run_resumes_bit_identically(base, tmp_path):
    runs, _ = base
    kw = dict(method="imp", signs_from=str(runs["lrr"]), perturb_signs=0.5, perturb_at_level=1)
    whole = run(small_config(**kw), tmp_path / "whole")
    part = run(small_config(**kw, levels=2), tmp_path / "part")
    train(small_config(**kw), part, resume=True, reporter=silent())
    for level in range(LEVELS):
        name = level_filename(level)
        assert (part / name).read_bytes() == (whole / name).read_bytes(), name
