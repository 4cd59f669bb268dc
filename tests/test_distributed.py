"""Data-parallel training under torchrun, on the CPU with gloo.

The runs are read back the way users read them: ``signscope flips --format json`` and plain
safetensors, never through the trainers' own loader.
"""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from safetensors import safe_open

from signscope.errors import SignscopeError, UsageError
from signscope.runformat import level_filename

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from trainers.config import resolve_config  # noqa: E402
from trainers.distributed import LaunchEnv, launch_env, per_rank_batch  # noqa: E402
from trainers.progress import Reporter  # noqa: E402
from trainers.train import train  # noqa: E402

# One epoch per level: the cost of these tests is start-up (torch, and torch._dynamo, which
# DistributedDataParallel imports), not training.
OPTIONS = {"levels": 2, "epochs": 1, "lr_warmup_epochs": 0, "rewind_epoch": 1, "device": "cpu"}


def _flags(options: dict) -> list[str]:
    return [arg for k, v in options.items() for arg in ("--" + k.replace("_", "-"), str(v))]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 -m signscope ...`` (torchrun is this
    module of the interpreter's torch)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "signscope",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def flips_levels(run: Path) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "signscope", "flips", str(run), "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["levels"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    single = train(
        resolve_config("demo", OPTIONS),
        base / "single",
        reporter=Reporter(Console(file=io.StringIO())),
    )
    proc = torchrun(
        "train", "--preset", "demo", *_flags(OPTIONS), "--out", str(base / "ddp"), "--quiet"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return single, base / "ddp", proc


@pytest.mark.slow
def test_torchrun_writes_a_valid_run_with_the_single_process_densities(runs):
    single, ddp, proc = runs
    manifest = json.loads((ddp / "run.json").read_text())
    assert manifest["complete"] is True and manifest["world_size"] == 2
    assert manifest["config"]["batch_size"] == 64  # the global batch, as given
    ours, theirs = flips_levels(ddp), flips_levels(single)
    assert [r["level"] for r in ours] == [0, 1]
    assert [(r["density"], r["alive"]) for r in ours] == [
        (r["density"], r["alive"]) for r in theirs
    ]
    assert ours[1]["density"] == pytest.approx(0.8, abs=1e-4)
    assert all(s["test_acc"] > 0.8 for s in manifest["levels"])
    # Rank 0 alone writes: one metrics line per epoch, one summary line per level on stderr.
    lines = (ddp / "metrics.jsonl").read_text().splitlines()
    assert [(r["level"], r["epoch"]) for r in map(json.loads, lines)] == [(0, 1), (1, 1)]
    assert proc.stderr.count("level  1  density 0.8000") == 1
    assert proc.stderr.count(f"run written to {ddp}") == 1
    with safe_open(str(ddp / level_filename(1)), "np") as f:
        assert f.metadata()["format"] == "signscope/1" and f.metadata()["level"] == "1"


@pytest.mark.slow
def test_torchrun_resume_continues_bit_identically(runs, tmp_path):
    # A run killed after level 0 (level 1 never renamed into place), resumed under torchrun,
    # gives the files of the uninterrupted torchrun run byte for byte.
    _, ddp, _ = runs
    killed = tmp_path / "killed"
    shutil.copytree(ddp, killed)
    (killed / level_filename(1)).unlink()
    proc = torchrun("train", "--resume", "--out", str(killed), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("init.safetensors", "rewind.safetensors", level_filename(0), level_filename(1)):
        assert (killed / name).read_bytes() == (ddp / name).read_bytes(), name
    assert json.loads((killed / "run.json").read_text())["complete"] is True


@pytest.mark.slow
def test_under_torchrun_rank_0_takes_the_folders_lock(tmp_path):
    # The fixture's run shows that the other ranks do not take it (they would be refused).
    from trainers.runlock import run_lock

    out = tmp_path / "run"
    out.mkdir()
    with run_lock(out):
        proc = torchrun("train", "--preset", "demo", *_flags(OPTIONS), "--out", str(out))
    assert proc.returncode != 0
    refusal = f"error: --out {out}: another process is writing a run into this folder"
    refusal += f" (pid {os.getpid()}"
    assert proc.stderr.count(refusal) == 1, proc.stderr[-3000:]
    assert not list(out.iterdir())


def test_launch_env_reads_torchrun_variables():
    assert launch_env({}) == LaunchEnv(0, 1, 0)
    env = launch_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.is_main, env.distributed) == (
        3,
        4,
        1,
        False,
        True,
    )
    with pytest.raises(SignscopeError, match="malformed"):
        launch_env({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(SignscopeError, match="inconsistent"):
        launch_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_global_batch_must_split_evenly(tmp_path):
    assert per_rank_batch(256, 4) == 64
    cfg = resolve_config("demo", {**OPTIONS, "batch_size": 63})
    # Refused before any collective or file: no process group is needed to see the error.
    with pytest.raises(UsageError, match="--batch-size 63 cannot be split evenly over 2"):
        train(cfg, tmp_path / "odd", rank=1, world_size=2)
    assert not (tmp_path / "odd").exists()


def test_world_size_without_a_process_group_is_refused(tmp_path):
    cfg = resolve_config("demo", OPTIONS)
    with pytest.raises(UsageError, match="world_size 2 needs an initialised process group"):
        train(cfg, tmp_path / "alone", rank=0, world_size=2)
    assert not (tmp_path / "alone").exists()


@pytest.mark.slow
def test_grid_scripts_print_the_runs_in_the_figure_scripts_folders(tmp_path):
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DRY_RUN": "1", "GPUS": "0,1", "WORK": str(tmp_path / "paper")}
    local = subprocess.run(
        ["bash", str(root / "examples/grid_local.sh"), "cifar10"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert local.returncode == 0, local.stderr
    lines = local.stdout.splitlines()
    assert len(lines) == 3 + 9 and all(line.startswith("CUDA_VISIBLE_DEVICES=") for line in lines)
    work = tmp_path / "paper" / "cifar10"
    assert (
        sum(
            f"--out {work}/imp-seed{s} " in line and line.endswith("--levels 1")
            for line in lines
            for s in range(3)
        )
        == 3
    )  # wave 1: level 0 of each seed's IMP run
    assert f"--bn-rewind --init-from {work}/imp-seed2 --levels 20" in local.stdout

    slurm = subprocess.run(
        ["bash", str(root / "examples/slurm_grid.sh"), "cifar10", "vgg16"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert slurm.returncode == 0, slurm.stderr
    first, second = slurm.stderr.splitlines()[:2]
    assert "--array=0-5" in first and first.endswith("slurm_grid.sh 1 cifar10 vgg16")
    assert "--array=0-17" in second and "--dependency=afterok:JOBID" in second
