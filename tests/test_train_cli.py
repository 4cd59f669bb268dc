"""`signscope train` as users run it: in a subprocess, killed with -9 and resumed, and failing
with one `error:` line."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_mlp_train
from rich.console import Console

from signscope.cli import main

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# The demo preset (convnet on digits), shortened.
TINY = [
    "--preset",
    "demo",
    "--levels",
    "3",
    "--epochs",
    "1",
    "--lr-warmup-epochs",
    "0",
    "--batch-size",
    "128",
    "--device",
    "cpu",
]


def signscope(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signscope", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        **kw,
    )


def checkpoints(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.glob("*.safetensors"))}


def metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of TINY, trained in this process."""
    from trainers.config import resolve_config
    from trainers.progress import Reporter
    from trainers.train import train

    cfg = resolve_config(
        "demo", dict(levels=3, epochs=1, lr_warmup_epochs=0, batch_size=128, device="cpu")
    )
    return train(
        cfg, tmp_path_factory.mktemp("ref") / "run", reporter=Reporter(Console(file=io.StringIO()))
    )


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, capsys, reference):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "signscope", "train", *TINY, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    deadline = time.monotonic() + 240
    while not (out / "level_000.safetensors").exists():
        assert proc.poll() is None, "training ended before writing level 0"
        assert time.monotonic() < deadline, "no level file after 240 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "level_002.safetensors").exists(), (
        "the run finished before it could be killed"
    )
    assert json.loads((out / "run.json").read_text())["complete"] is False

    assert main(["train", *TINY, "--out", str(out)]) == 2  # a killed run is not overwritten either
    assert "--resume" in capsys.readouterr().err

    resumed = signscope("train", "--resume", "--quiet", "--out", out)  # the stored config is used
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoints(out) == checkpoints(reference)
    assert metrics(out) == metrics(reference)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["complete"] is True and len(manifest["levels"]) == 3


@pytest.mark.slow
def test_subprocess_run_prints_epochs_and_one_line_per_level(tmp_path):
    out = tmp_path / "demo"
    result = signscope(
        "train",
        "--preset",
        "demo",
        "--method",
        "imp",
        "--levels",
        "2",
        "--epochs",
        "1",
        "--lr-warmup-epochs",
        "0",
        "--rewind-epoch",
        "0",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    summaries = [line for line in lines if line.startswith("level ") and "density" in line]
    epochs = [line for line in lines if "epoch 1/1" in line]
    assert len(summaries) == 2 and len(epochs) == 2
    assert lines[-1] == f"run written to {out}"
    config = json.loads((out / "run.json").read_text())["config"]
    assert (
        config["method"],
        config["levels"],
        config["rewind_epoch"],
        config["lr_warmup_epochs"],
    ) == ("imp", 2, 0, 0)
    assert (out / "init.safetensors").read_bytes()[8:] != b""
    # rewind epoch 0: the rewind point is the initial state.
    from safetensors.numpy import load_file

    init, rewind = load_file(out / "init.safetensors"), load_file(out / "rewind.safetensors")
    assert all((init[k] == rewind[k]).all() for k in init)


def test_quiet_prints_only_the_summary_lines(tmp_path, capsys):
    code = main(
        [
            *tiny_mlp_train(),
            "--quiet",
            "--out",
            str(tmp_path / "q"),
        ]
    )
    assert code == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"watch it with: signscope tui {tmp_path / 'q'}"
    assert [line.split()[:2] for line in lines[1:3]] == [["level", "0"], ["level", "1"]]
    assert len(lines) == 4 and lines[3].startswith("run written to")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_request_without_cuda_is_a_clean_error(tmp_path, capsys):
    assert main(["train", "--device", "cuda", "--out", str(tmp_path / "cuda")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: no CUDA device") and len(err.splitlines()) == 1
    assert not (tmp_path / "cuda").exists()


@pytest.mark.parametrize(
    "args, code, message",
    [
        # Every check of the command line is a usage error (exit 2).
        (
            ["--preset", "cifar10-resnet50"],
            2,
            "--preset 'cifar10-resnet50': unknown; choose one of demo",
        ),
        (["--model", "resnet20"], 2, "--model 'resnet20': unknown"),
        (["--dataset", "imagenet2"], 2, "--dataset 'imagenet2': unknown"),
        (["--method", "wr"], 2, "--method 'wr': unknown"),
        (["--levels", "0"], 2, "--levels 0"),
        (["--levels", "-3"], 2, "--levels -3"),
        (["--prune-fraction", "1.5"], 2, "--prune-fraction 1.5"),
        (["--lr", "-1"], 2, "--lr -1.0: must be positive"),
        (["--epochs", "0"], 2, "--epochs 0"),
        (["--batch-size", "0"], 2, "--batch-size 0"),
        (["--momentum", "2"], 2, "--momentum in [0, 1)"),
        (["--eval-every", "0"], 2, "--eval-every 0"),
        (["--lr-warmup-epochs", "1", "--epochs", "1"], 2, "--lr-warmup-epochs 1"),
        (["--seed", "-1"], 2, "--seed -1: must lie in 0..18446744073709551615"),
        (["--seed", "99999999999999999999"], 2, "--seed 99999999999999999999: must lie in"),
        (["--method", "imp", "--bn-rewind"], 2, "--bn-rewind applies to --method lrr only"),
        (["--synthetic-shape", "3x32"], 2, "--synthetic-shape"),
        (["--resume", "--force"], 2, "--resume keeps the run in --out and --force replaces it"),
        # Problems with the data are not usage errors.
        (["--dataset", "imagenet", "--data-root", "{tmp}"], 1, "no ImageNet at"),
        (["--dataset", "cifar10", "--data-root", "{tmp}/nothing"], 1, "no CIFAR-10 at"),
        (["--dataset", "tiny-imagenet", "--data-root", "{tmp}"], 1, "no Tiny ImageNet at"),
    ],
)
def test_bad_options_give_one_error_line(tmp_path, capsys, args, code, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["train", *args, "--out", str(tmp_path / "run")]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_non_empty_out_is_refused_and_force_replaces_it(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = [
        *tiny_mlp_train(1),
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(args) == 2
    assert "folder is not empty" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # --force only replaces the run's own files
    assert (out / "level_000.safetensors").exists()


def test_resume_refuses_a_changed_setting(tmp_path, capsys):
    out = tmp_path / "run"
    base = [
        *tiny_mlp_train(1),
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--resume", "--lr", "0.05"]) == 2
    assert "--lr 0.05 differs from the run's 0.1" in capsys.readouterr().err
    assert main(["train", "--resume", "--levels", "2", "--quiet", "--out", str(out)]) == 0
    assert (out / "level_001.safetensors").exists()
