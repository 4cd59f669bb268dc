"""The run folder of `signscope train` under stress: two writers
at once, kills before the first level, leftovers of killed writers, `--force` beside the
user's files, and failures that must leave nothing a retry would trip over.

Killed runs are rebuilt from a finished one by removing what a SIGKILL at that moment would
not have written yet (files are renamed into place only when complete, so that state is exact);
the real SIGKILL tests are in test_train_cli.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from signscope.cli import main

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from trainers.runlock import run_lock  # noqa: E402

# A two-level MLP on digits: under a second of training.
SETTINGS = (
    "--preset demo --model mlp --levels 2 --epochs 2 --lr-warmup-epochs 0 --rewind-epoch 1 "
    "--device cpu --quiet"
).split()


def train(capsys, out: Path, *args: str) -> tuple[int, str]:
    code = main(["train", *args, "--out", str(out)])
    return code, capsys.readouterr().err


def one_error(err: str, *needles: str) -> str:
    # The command that watches the run is printed once run.json exists; it is not an error.
    lines = [line for line in err.strip().splitlines() if not line.startswith("watch it with:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def metrics(run: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["level"], r["epoch"], r["train_loss"]) for r in rows]


def checkpoints(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.glob("*.safetensors"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *SETTINGS, "--out", str(out)]) == 0
    return out


def killed_in_level_0(finished: Path, to: Path) -> Path:
    """A run killed after level 0's epochs were logged, before level_000 was renamed."""
    shutil.copytree(finished, to)
    for name in ("level_000.safetensors", "level_001.safetensors"):
        (to / name).unlink()
    rows = (to / "metrics.jsonl").read_text().splitlines()
    (to / "metrics.jsonl").write_text("".join(r + "\n" for r in rows if '"level": 0' in r))
    return to


# ----------------------------------------------------------------- 1: one writer per folder


def test_a_second_writer_is_turned_away_naming_the_first(capsys, finished, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with run_lock(out):  # as a running `signscope train` holds it
        code, err = train(capsys, out, *SETTINGS)
        assert code == 1
        one_error(err, f"--out {out}: another process is writing a run", f"pid {os.getpid()} on")
        assert sorted(p.name for p in out.iterdir()) == [".signscope.lock"]
        # A concurrent --resume of that run is turned away too.
        code, err = train(capsys, out, *SETTINGS, "--resume")
        assert code == 1 and "another process is writing a run" in err
    code, err = train(capsys, out, *SETTINGS)
    assert code == 0, err
    assert checkpoints(out) == checkpoints(finished)
    assert not (out / ".signscope.lock").exists()


@pytest.mark.slow
def test_two_trainings_started_together_one_is_refused(finished, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "signscope", "train", *SETTINGS, "--out", str(out)]
    procs = [
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    (ok, _), (refused, err) = results
    assert (ok, refused) == (0, 1), results
    assert "another process is writing a run into this folder (pid " in err
    assert checkpoints(out) == checkpoints(finished)
    assert metrics(out) == metrics(finished)


@pytest.mark.slow
def test_the_lock_of_a_killed_process_is_free(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from pathlib import Path
                from trainers.runlock import run_lock
                with run_lock(Path({str(out)!r})):
                    print("locked", flush=True)
                    time.sleep(300)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / ".signscope.lock").exists()  # left behind, but no longer locked
    code, err = train(capsys, out, *SETTINGS, "--resume")
    assert code == 0, err


# ----------------------------------------------------------------- 2, 3, 5: killed before a level


def test_a_kill_during_level_0_then_resume_does_not_duplicate_metrics(capsys, finished, tmp_path):
    out = killed_in_level_0(finished, tmp_path / "run")
    (out / ".level_000.safetensors.k1l2e3d4.tmp").write_bytes(b"\0" * 100)
    code, err = train(capsys, out, "--resume")  # the settings come from run.json
    assert code == 0, err
    assert metrics(out) == metrics(finished)
    assert checkpoints(out) == checkpoints(finished)
    assert not list(out.glob(".*.tmp")) and not (out / ".signscope.lock").exists()


@pytest.mark.parametrize(
    "left", [["init.safetensors"], [".init.safetensors.a1b2c3d4.tmp"], [".run.json.x9y8z7w6.tmp"]]
)
def test_a_kill_before_the_first_run_json_can_be_resumed(capsys, finished, tmp_path, left):
    out = tmp_path / "run"
    out.mkdir()
    for name in left:
        shutil.copy(finished / "init.safetensors", out / name)
    code, err = train(capsys, out, "--resume")  # 4: nothing says what run this was
    assert code == 1
    one_error(err, f"--resume {out}: there is no run to continue")
    code, err = train(capsys, out, *SETTINGS, "--resume")  # the grid scripts' command
    assert code == 0, err
    assert checkpoints(out) == checkpoints(finished)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_resume_after_a_level_removes_stale_temporaries(capsys, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "level_001.safetensors").unlink()
    stale = [".level_001.safetensors.q1w2e3r4.tmp", ".metrics.jsonl.abcdefgh.tmp"]
    for name in stale:
        (out / name).write_bytes(b"\0" * 474)
    (out / ".notes.tmp").write_text("mine")  # not a temporary signscope writes
    code, err = train(capsys, out, "--resume")
    assert code == 0, err
    assert checkpoints(out) == checkpoints(finished) and metrics(out) == metrics(finished)
    assert sorted(p.name for p in out.glob(".*")) == [".notes.tmp"]


# ----------------------------------------------------------------- 4: nothing to resume


def test_a_bare_resume_of_a_folder_that_does_not_exist_is_an_error(capsys, tmp_path):
    out = tmp_path / "missing"
    code, err = train(capsys, out, "--resume")
    assert code == 1
    one_error(err, f"--resume {out}: there is no run to continue (no run.json)")
    assert not out.exists()
    # Settings that a run may change on --resume do not say which run to start either.
    code, err = train(capsys, out, "--resume", "--levels", "3", "--device", "cpu")
    assert code == 1 and "no run to continue" in err and not out.exists()
    code, err = train(capsys, tmp_path / "new", *SETTINGS, "--resume")  # starts it
    assert code == 0, err


# ----------------------------------------------------------------- 6: --force replaces only ours


def test_force_leaves_the_users_checkpoints_alone(capsys, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    mine = out / "my_finetuned_model.safetensors"
    mine.write_bytes(b"precious")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = train(capsys, out, *SETTINGS, "--force")
    assert code == 2
    one_error(err, "--force replaces only the files signscope wrote", mine.name)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    mine.unlink()
    (out / "notes.txt").write_text("mine")
    (out / "level_007.safetensors").write_bytes(b"from an older, longer run")
    code, err = train(capsys, out, *SETTINGS, "--force")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.glob("level_*")) == [
        "level_000.safetensors",
        "level_001.safetensors",
    ]


# ----------------------------------------------------------------- 15: failures name the file


def test_a_full_disk_names_the_file_and_leaves_nothing_behind(capsys, monkeypatch, tmp_path):
    out = tmp_path / "run"
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith("level_000.safetensors"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    code, err = train(capsys, out, *SETTINGS)
    assert code == 1
    one_error(err, f"{out / 'level_000.safetensors'}: cannot write (No space left on device)")
    assert not out.exists()  # nothing that would make the retry below "not empty"
    monkeypatch.undo()
    code, err = train(capsys, out, *SETTINGS)
    assert code == 0, err


def test_a_path_too_long_is_one_error_line(capsys, tmp_path):
    out = tmp_path / ("x" * 5000)
    code, err = train(capsys, out, *SETTINGS)
    assert code == 1
    one_error(err, "cannot create the folder", os.strerror(36))


def test_a_read_only_folder_is_one_error_line(capsys, monkeypatch, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    real_open = os.open

    # What a read-only folder does to every file created in it (chmod would not stop root).
    def read_only(path, flags, *args, **kwargs):
        if Path(path).parent == out and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    code, err = train(capsys, out, *SETTINGS)
    assert code == 1
    one_error(err, f"--out {out}: cannot write into this folder (Permission denied)")
    assert list(out.iterdir()) == []


def test_writes_that_fail_name_the_final_file(monkeypatch, tmp_path):
    from signscope.errors import SignscopeError
    from signscope.runformat import atomic_write_bytes

    target = tmp_path / "level_000.safetensors"

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".level_000.x.tmp"))

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(SignscopeError, match=r"level_000.safetensors: cannot write \(Permission"):
        atomic_write_bytes(target, b"data")
    monkeypatch.undo()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "Disk full")))
    with pytest.raises(SignscopeError, match=r"level_000.safetensors: cannot write \(Disk full"):
        atomic_write_bytes(target, b"data")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- 16: levels with nothing alive


def test_levels_that_would_keep_no_weight_are_refused_before_anything_is_written(capsys, tmp_path):
    from trainers.config import check_levels, resolve_config

    out = tmp_path / "run"
    code, err = train(capsys, out, *SETTINGS, "--levels", "100000")
    assert code == 2
    line = one_error(err, "--levels 100000: level ", "would keep none of the", "prunable weights")
    assert not out.exists()
    most = int(line.rsplit("--levels ", 1)[1])
    prunable = int(line.split("none of the ")[1].split()[0].replace(",", ""))
    cfg = resolve_config("demo", {"model": "mlp", "levels": most})
    check_levels(cfg, prunable)  # the largest count it names is accepted
    with pytest.raises(Exception, match=f"use at most --levels {most}"):
        check_levels(resolve_config("demo", {"model": "mlp", "levels": most + 1}), prunable)


def test_a_stored_config_this_version_refuses_is_an_error_about_run_json(
    capsys, finished, tmp_path
):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    manifest = json.loads((out / "run.json").read_text())
    manifest["config"]["seed"] = -1
    (out / "run.json").write_text(json.dumps(manifest))
    code, err = train(capsys, out, "--resume")
    assert code == 1
    one_error(err, f"{out}/run.json: config is not valid (--seed -1")
