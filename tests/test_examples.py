"""The figure scripts in examples/: their paper commands (--dry-run), and the same pipelines at
toy scale (--smoke) on the bundled digits. Each smoke run starts from an empty work folder, so
every script is checked to train all the runs it uses."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("fig*.py"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FAMILIES = ["02", "03", "04", "05", "06", "07", "12", "13", "14", "15", "16", "17", "18"]
# `signscope neuron` imports this module, which is not in the tree yet (its author is on it).
USES_NEURON = {"fig02_random_masks.py", "fig18_neuron_sweep.py"}


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )


def commands(output: str) -> list[str]:
    return [line[2:] for line in output.splitlines() if line.startswith("$ signscope ")]


def test_one_script_per_figure_family():
    assert [name[3:5] for name in SCRIPTS] == FAMILIES


@pytest.mark.slow
def test_dry_run_prints_the_paper_setups_with_three_seeds(tmp_path):
    result = script("fig03_imp_on_lrr_mask.py", "--dry-run", "--work", str(tmp_path / "w"))
    assert result.returncode == 0, result.stderr
    lines = commands(result.stdout)
    train = [c for c in lines if c.startswith("signscope train ")]
    # 2 setups x 3 seeds x (imp, lrr, lrr+bn-rewind, imp+lrr-mask, imp+lrr+bn-rewind-mask)
    assert len(train) == 30
    assert sum("--preset cifar10-resnet18 --data-root data" in c for c in train) == 15
    assert sum("--preset cifar100-resnet50" in c for c in train) == 15
    on_mask = [c for c in train if "--mask-from" in c and "--seed 2" in c and "cifar10/" in c]
    assert any(f"--mask-from {tmp_path}/w/cifar10/lrr-seed2 " in c for c in on_mask)
    assert all(c.endswith("--resume") for c in train)
    assert all("--init-from" in c for c in train if "/imp-seed" not in c)
    assert any(c.startswith("signscope export ") and "--figure accuracy" in c for c in lines)
    assert not (tmp_path / "w").exists()  # nothing ran


@pytest.mark.slow
def test_dry_run_of_the_perturbation_uses_the_papers_levels(tmp_path):
    lines = commands(script("fig07_perturbation_and_signs.py", "--dry-run", "--seeds", "0").stdout)
    assert any("--perturb-signs 0.8 --perturb-at-level 8" in c for c in lines)
    assert any("--method imp --signs-from" in c for c in lines)
    lines = commands(script("fig06_sign_perturbation.py", "--dry-run", "--seeds", "0").stdout)
    assert any("--perturb-signs 0.3 --perturb-at-level 1" in c for c in lines)


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("name", [s for s in SCRIPTS if s != "fig05_sign_flips.py"])
def test_smoke(name, tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    # In this process: PyTorch and the plotting stack are loaded once for all scripts.
    monkeypatch.syspath_prepend(str(EXAMPLES))
    work = tmp_path / "paper"
    monkeypatch.setattr(sys, "argv", [name, "--smoke", "--work", str(work)])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    out = capsys.readouterr().out
    assert all(
        "--preset demo --model mlp --levels 2" in c for c in commands(out) if " train " in f" {c}"
    )
    figures = work / "figures" / name[:5]
    assert figures.is_dir() and any(figures.rglob("*.csv"))
    if name not in USES_NEURON:
        assert any(figures.rglob("*.png"))


@pytest.mark.torch
@pytest.mark.slow
def test_smoke_as_users_run_it(tmp_path):
    pytest.importorskip("torch")
    result = script("fig05_sign_flips.py", "--smoke", "--work", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    panel = tmp_path / "figures" / "fig05" / "cifar10"
    assert {p.name for p in panel.iterdir()} >= {
        "last-flip.png",
        "flip-count.png",
        "levels.csv",
        "last_flip.csv",
        "flip_count.csv",
    }
    assert (panel / "last-flip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run reuses the finished runs (train --resume) and rewrites the figures.
    again = script("fig05_sign_flips.py", "--smoke", "--work", str(tmp_path))
    assert again.returncode == 0 and "level  0" not in again.stdout
