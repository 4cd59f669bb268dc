"""The inspection commands as a user runs them: every output format, column names exactly
as in SPEC section 4. One test runs the real executable in a subprocess; the others call
the same entry point in-process (a fresh interpreter per case would dominate the suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest
from runfactory import random_run

from signscope.cli import main


@pytest.fixture
def cli(capsys, monkeypatch):
    def run(*args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert rc == 0, err
        return out, err

    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for method in ("lrr", "imp"):
        for seed in (0, 1):
            made[f"{method}{seed}"] = random_run(
                root / f"{method}{seed}", seed=seed, method=method, n_levels=3, bf16=method == "imp"
            )
    return root, made


@pytest.mark.slow
def test_flips_json_matches_spec_section_4(runs):
    root, made = runs
    proc = subprocess.run(
        [sys.executable, "-m", "signscope", "flips", "lrr0", "imp0", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr
    out, err = proc.stdout, proc.stderr
    data = json.loads(out)
    assert list(data) == ["levels", "last_flip", "flip_count"]
    assert list(data["levels"][0]) == [
        "run",
        "level",
        "density",
        "alive",
        "flips_prev",
        "flips_init",
    ]
    assert list(data["last_flip"][0]) == ["run", "last_flip", "count"]
    assert list(data["flip_count"][0]) == ["run", "flip_count", "count"]
    # `run` is the path as given; flips_prev is null at level 0.
    assert {r["run"] for r in data["levels"]} == {"lrr0", "imp0"}
    assert [r["flips_prev"] for r in data["levels"] if r["level"] == 0] == [None, None]
    assert err == ""


@pytest.mark.slow
def test_fast_exit_keeps_exit_codes_and_output(runs):
    """Inspection commands skip the interpreter's teardown (os._exit); what they print, the
    exit status and a reader that closes the pipe early must not notice."""
    root, _ = runs
    cmd = [sys.executable, "-m", "signscope"]
    bad = subprocess.run([*cmd, "flips", "no-such-run"], capture_output=True, text=True, cwd=root)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")
    table = subprocess.run([*cmd, "show", "lrr0"], capture_output=True, text=True, cwd=root)
    assert table.returncode == 0 and "level" in table.stdout, table.stderr
    piped = subprocess.run(
        " ".join(
            [
                *cmd,
                "flips",
                "lrr0",
                "imp0",
                "lrr1",
                "imp1",
                "--per-layer",
                "--format",
                "json",
                "|",
                "head",
                "-c",
                "5",
            ]
        ),
        shell=True,
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert len(piped.stdout) == 5
    assert "Traceback" not in piped.stderr and "Exception ignored" not in piped.stderr


def test_flips_options(runs, cli):
    root, _ = runs
    out, _ = cli(
        "flips",
        "lrr0",
        "--per-layer",
        "--at-level",
        "1",
        "--reference",
        "rewind",
        "-f",
        "json",
        cwd=root,
    )
    data = json.loads(out)
    assert list(data["levels"][0]) == [
        "run",
        "layer",
        "level",
        "density",
        "alive",
        "flips_prev",
        "flips_init",
    ]
    assert {r["level"] for r in data["levels"]} == {0, 1}
    assert {r["layer"] for r in data["last_flip"]} == {"*", "conv1.weight", "fc.weight"}


def test_table_output_is_for_people(runs, cli):
    root, _ = runs
    out, _ = cli("flips", "lrr0", cwd=root)
    assert "levels" in out and "flips_init" in out and "last_flip" in out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_write_one_file_per_table(runs, cli, tmp_path, fmt):
    root, _ = runs
    _, err = cli("flips", "lrr0", "imp1", "--format", fmt, "--out", tmp_path / "o", cwd=root)
    files = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert files == [f"flip_count.{fmt}", f"last_flip.{fmt}", f"levels.{fmt}"]
    df = (
        pl.read_csv(tmp_path / "o" / f"levels.{fmt}")
        if fmt == "csv"
        else pl.read_parquet(tmp_path / "o" / f"levels.{fmt}")
    )
    assert df.columns == ["run", "level", "density", "alive", "flips_prev", "flips_init"]
    assert df.height == 6
    assert err.startswith("wrote ")


def test_masks_and_signs(runs, cli):
    root, _ = runs
    out, _ = cli("masks", "lrr0", "imp0", "--per-layer", "-f", "json", cwd=root)
    rows = json.loads(out)["masks"]
    assert list(rows[0]) == [
        "run_a",
        "run_b",
        "level",
        "layer",
        "intersection",
        "union",
        "jaccard",
        "jaccard_chance",
    ]
    assert rows[0]["layer"] == "*" and rows[0]["jaccard"] == 1.0  # level 0: both dense
    out, _ = cli("signs", "lrr0", "lrr0", "-f", "json", cwd=root)
    rows = json.loads(out)["signs"]
    assert list(rows[0]) == ["run_a", "run_b", "level", "layer", "both_alive", "agree", "agreement"]
    assert all(r["agreement"] == 1.0 for r in rows)


def test_bn(runs, cli):
    root, _ = runs
    out, _ = cli("bn", "lrr0", "imp0", "--level", "1", "-f", "json", cwd=root)
    data = json.loads(out)
    assert list(data) == ["bn", "bn_hist"]
    assert [(r["run"], r["level"], r["layer"], r["count"]) for r in data["bn"]] == [
        ("lrr0", 1, "bn1", 4),
        ("imp0", 1, "bn1", 4),
    ]
    assert list(data["bn_hist"][0]) == ["run", "level", "layer", "bin_low", "bin_high", "count"]


def test_acc(runs, cli):
    root, _ = runs
    out, _ = cli("acc", "lrr0", "lrr1", "imp0", "imp1", "-f", "json", cwd=root)
    data = json.loads(out)
    acc = data["accuracy"]
    assert list(acc[0]) == [
        "method",
        "level",
        "density",
        "sparsity",
        "replicates",
        "mean",
        "ci_low",
        "ci_high",
    ]
    assert {(r["method"], r["replicates"]) for r in acc} == {("lrr", 2), ("imp", 2)}
    assert all(r["ci_low"] < r["mean"] < r["ci_high"] for r in acc)
    assert len(data["runs"]) == 12


def test_show(runs, cli, tmp_path):
    root, _ = runs
    out, _ = cli("show", "lrr0", "-f", "json", cwd=root)
    data = json.loads(out)
    assert list(data) == ["config", "checkpoints", "levels", "layers"]
    assert {"key": "method", "value": "lrr"} in data["config"]
    assert [(r["checkpoint"], r["step"], r["files"]) for r in data["checkpoints"]] == [
        (f"level_00{i}.safetensors", None, 1) for i in range(3)
    ]
    assert all(
        r["size"] == (root / "lrr0" / r["checkpoint"]).stat().st_size for r in data["checkpoints"]
    )
    assert [r["level"] for r in data["levels"]] == [0, 1, 2]
    conv = next(r for r in data["layers"] if r["layer"] == "conv1.weight")
    assert (conv["shape"], conv["numel"], conv["prunable"]) == ("4x1x3x3", 36, True)
    _, err = cli("show", "lrr0", "--level", "0", "--out", tmp_path / "o", cwd=root)
    assert (tmp_path / "o" / "show.txt").read_text().count("conv1.weight") == 1
