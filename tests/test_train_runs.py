"""Small IMP/LRR runs on the bundled digits, read back the way users read them: with plain
``safetensors`` and numpy, never through the trainers' own loader."""

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from safetensors import safe_open
from safetensors.numpy import load_file

from signscope.errors import SignscopeError
from signscope.runformat import INIT_FILE, REWIND_FILE, level_filename

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from trainers.config import resolve_config  # noqa: E402
from trainers.progress import Reporter  # noqa: E402
from trainers.train import train  # noqa: E402

LEVELS = 4
# Two epochs per level so the rewind point (end of epoch 1) differs from both the init and
# the end of level 0. The MLP (with BatchNorm1d) keeps these runs well under a second each;
# the convnet runs in test_train_cli.py.
SMALL = dict(
    model="mlp",
    levels=LEVELS,
    epochs=2,
    lr_warmup_epochs=1,
    rewind_epoch=1,
    batch_size=128,
    device="cpu",
)


def small_config(**kw):
    return resolve_config("demo", {**SMALL, **kw})


def silent() -> Reporter:
    return Reporter(Console(file=io.StringIO()))


def record_starts(starts: dict):
    def on_level_start(level, model):
        starts[level] = {k: v.detach().cpu().clone().numpy() for k, v in model.state_dict().items()}

    return on_level_start


def files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.glob("*.safetensors"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    assert torch.get_num_threads() == 1 or os.environ.get("OMP_NUM_THREADS") != "1"
    base = tmp_path_factory.mktemp("train")
    out, starts = {}, {}
    for name, kw in {
        "imp": dict(method="imp"),
        "lrr": dict(method="lrr"),
        "bnr": dict(method="lrr", bn_rewind=True),
    }.items():
        starts[name] = {}
        out[name] = train(
            small_config(**kw),
            base / name,
            reporter=silent(),
            on_level_start=record_starts(starts[name]),
        )
    return out, starts


def test_run_directory_follows_spec_section_2(runs):
    run = runs[0]["lrr"]
    names = sorted(p.name for p in run.iterdir())
    assert names == sorted(
        ["run.json", "metrics.jsonl", INIT_FILE, REWIND_FILE]
        + [level_filename(L) for L in range(LEVELS)]
    )
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["format"] == "signscope/1" and manifest["complete"] is True
    cfg = manifest["config"]
    assert (
        cfg["method"],
        cfg["bn_rewind"],
        cfg["model"],
        cfg["dataset"],
        cfg["seed"],
        cfg["preset"],
    ) == ("lrr", False, "mlp", "digits", 0, "demo")
    for key in (
        "lr",
        "epochs",
        "lr_warmup_epochs",
        "rewind_epoch",
        "schedule",
        "batch_size",
        "weight_decay",
        "momentum",
        "prune_fraction",
        "levels",
        "init_from",
    ):
        assert key in cfg
    assert [s["level"] for s in manifest["levels"]] == list(range(LEVELS))
    assert all(0.9 < s["test_acc"] <= 1 for s in manifest["levels"])

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == LEVELS * 2
    assert set(rows[0]) == {
        "level",
        "epoch",
        "lr",
        "train_loss",
        "train_acc",
        "test_acc",
        "seconds",
    }
    assert [(r["level"], r["epoch"]) for r in rows] == [
        (L, e) for L in range(LEVELS) for e in (1, 2)
    ]


def test_levels_read_back_with_plain_safetensors(runs):
    run = runs[0]["lrr"]
    init = load_file(run / INIT_FILE)
    prunable = [n for n, a in init.items() if a.ndim >= 2 and n.endswith("weight")]
    total = sum(init[n].size for n in prunable)
    for level in range(LEVELS):
        path = run / level_filename(level)
        tensors = load_file(path)
        with safe_open(path, "np") as fh:
            meta = fh.metadata()
        assert (
            meta["format"] == "signscope/1"
            and meta["level"] == str(level)
            and meta["method"] == "lrr"
        )
        assert 0 < float(meta["test_acc"]) <= 1
        assert set(tensors) == set(init) | {f"mask/{n}" for n in prunable}
        alive = 0
        for n in prunable:
            mask = tensors[f"mask/{n}"]
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
            w = tensors[n]
            assert (w[mask == 0] == 0).all()  # pruned weights exactly zero
            assert (w[mask == 1] != 0).all()  # and the zeros are exactly the pruned weights
            alive += int(mask.sum())
        assert abs(alive - total * 0.8**level) <= 1
        assert float(meta["density"]) == pytest.approx(alive / total)


def test_imp_and_lrr_share_init_and_rewind_byte_for_byte(runs):
    imp, lrr = runs[0]["imp"], runs[0]["lrr"]
    for name in (INIT_FILE, REWIND_FILE):
        assert (imp / name).read_bytes() == (lrr / name).read_bytes()
    init, rewind = load_file(imp / INIT_FILE), load_file(imp / REWIND_FILE)
    assert any(not np.array_equal(init[k], rewind[k]) for k in init)  # epoch 1 is not the init
    # Level 0 is the same dense training for both methods.
    a, b = load_file(imp / level_filename(0)), load_file(lrr / level_filename(0))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def _expected_start(method, run, level, bn_rewind=False):
    rewind = load_file(run / REWIND_FILE)
    prev = load_file(run / level_filename(level - 1))
    current = load_file(run / level_filename(level))
    base = rewind if method == "imp" else prev
    expected = {k: v for k, v in base.items() if not k.startswith("mask/")}
    if bn_rewind:
        for k in expected:
            if k.startswith("bn") or ".bn" in k:
                expected[k] = rewind[k]
    for k, m in current.items():
        if k.startswith("mask/"):
            name = k[len("mask/") :]
            expected[name] = np.where(m.astype(bool), expected[name], 0).astype(
                expected[name].dtype
            )
    return expected


@pytest.mark.parametrize(
    "name, method, bn_rewind", [("imp", "imp", False), ("lrr", "lrr", False), ("bnr", "lrr", True)]
)
def test_each_level_starts_from_specs_rule(runs, name, method, bn_rewind):
    run, starts = runs[0][name], runs[1][name]
    init = load_file(run / INIT_FILE)
    assert all(np.array_equal(starts[0][k], init[k]) for k in init)
    for level in range(1, LEVELS):
        expected = _expected_start(method, run, level, bn_rewind)
        assert set(expected) == set(starts[level])
        for k, v in expected.items():
            assert np.array_equal(starts[level][k], v), (name, level, k)
    if bn_rewind:  # the rule really differs from plain LRR in the BatchNorm entries only
        plain = _expected_start("lrr", run, 2)
        differ = {k for k in plain if not np.array_equal(plain[k], starts[2][k])}
        assert differ and all("bn" in k for k in differ)


def test_same_command_twice_gives_identical_checkpoints(runs, tmp_path):
    again = train(small_config(method="lrr"), tmp_path / "again", reporter=silent())
    assert files(again) == files(runs[0]["lrr"])


def test_init_from_reuses_another_runs_init_and_rewind(runs, tmp_path):
    src = runs[0]["lrr"]
    cfg = small_config(method="imp", seed=7, levels=2, init_from=str(src))
    run = train(cfg, tmp_path / "imp-from-lrr", reporter=silent())
    for name in (INIT_FILE, REWIND_FILE):
        assert (run / name).read_bytes() == (src / name).read_bytes()
    assert json.loads((run / "run.json").read_text())["config"]["init_from"] == str(src)

    other = small_config(method="imp", model="convnet", levels=2, init_from=str(src))
    with pytest.raises(SignscopeError, match="different architecture"):
        train(other, tmp_path / "wrong-arch", reporter=silent())
    assert not (tmp_path / "wrong-arch").exists()  # nothing half-made is left behind


def test_resume_of_a_complete_run_can_add_levels(runs, tmp_path):
    import shutil

    short = tmp_path / "short"
    shutil.copytree(runs[0]["imp"], short)
    for level in (2, 3):
        (short / level_filename(level)).unlink()  # as if it had been started with --levels 2
    train(small_config(method="imp"), short, resume=True, reporter=silent())
    assert files(short) == files(runs[0]["imp"])
    manifest = json.loads((short / "run.json").read_text())
    assert manifest["complete"] and [s["level"] for s in manifest["levels"]] == list(range(LEVELS))
    with pytest.raises(Exception, match="differs|lr"):
        train(small_config(method="imp", lr=0.05), short, resume=True, reporter=silent())


def test_live_display_in_a_terminal(tmp_path):
    from trainers.progress import LiveReporter

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    train(
        small_config(levels=2, epochs=1, lr_warmup_epochs=0, rewind_epoch=0),
        tmp_path / "live",
        reporter=LiveReporter(console),
    )
    text = buf.getvalue()
    assert "level 1/1  epoch 1/1" in text and "ETA" in text and "last epoch: loss" in text
    assert "level  1  density 0.8000" in text
