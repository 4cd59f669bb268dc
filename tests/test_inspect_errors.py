"""Bad input: every problem is a RunFormatError that names the file and the problem,
and the CLI turns it into one `error:` line with exit status 1."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
from cliutil import assert_one_error_line as _assert_one_error_line
from cliutil import cli as _cli
from runfactory import random_run, write_run, write_safetensors

import signscope
from signscope.errors import RunFormatError

W = {"fc.weight": np.array([[1.0, -2.0], [3.0, 0.5]], np.float32)}


@pytest.mark.slow
def test_missing_path(tmp_path):
    with pytest.raises(RunFormatError, match="no such file or folder"):
        signscope.open_run(tmp_path / "nope")
    # The real executable once: one line on stderr, exit status 1, nothing on stdout.
    proc = subprocess.run(
        [sys.executable, "-m", "signscope", "flips", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert proc.stdout == ""
    _assert_one_error_line(
        proc.returncode, proc.stderr, str(tmp_path / "nope"), "no such file or folder"
    )


def test_folder_without_checkpoints(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(RunFormatError, match=r"empty: no checkpoints"):
        signscope.open_run(tmp_path / "empty")
    rc, _, err = _cli("show", tmp_path / "empty")
    _assert_one_error_line(rc, err, "no checkpoints")


def test_a_checkpoint_file_is_a_run_of_one_level_and_other_files_are_not_runs(tmp_path):
    path = write_safetensors(tmp_path / "x.safetensors", W)
    run = signscope.open_run(path)
    assert (run.kind, run.levels, run.level_labels) == ("checkpoint", [0], ["x.safetensors"])
    other = tmp_path / "notes.txt"
    other.write_text("hi")
    with pytest.raises(RunFormatError, match="not a run folder or checkpoint"):
        signscope.open_run(other)


def test_truncated_checkpoint(tmp_path):
    run = random_run(tmp_path / "r", n_levels=3)
    victim = run / "level_001.safetensors"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 10])
    with pytest.raises(
        RunFormatError, match=r"level_001\.safetensors: truncated: tensor '.*' needs bytes"
    ):
        signscope.open_run(run)
    rc, _, err = _cli("flips", run, "--format", "json")
    _assert_one_error_line(rc, err, "level_001.safetensors", "truncated")


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda d: d[:5], "too short"),
        (lambda d: struct.pack("<Q", 10**12) + d[8:], "header claims"),
        (lambda d: d[:8] + b"{not json" + d[17:], "not JSON"),
        (
            lambda d: (
                d[:8]
                + b"["
                + b" " * (struct.unpack("<Q", d[:8])[0] - 2)
                + b"]"
                + d[8 + struct.unpack("<Q", d[:8])[0] :]
            ),
            "not a JSON object",
        ),
    ],
)
def test_corrupt_header(tmp_path, damage, needle):
    run = write_run(tmp_path / "r", [W, W], W)
    victim = run / "level_000.safetensors"
    victim.write_bytes(damage(victim.read_bytes()))
    with pytest.raises(RunFormatError, match=needle) as exc:
        signscope.open_run(run)
    assert str(victim) in str(exc.value)


def test_header_that_lies_about_sizes(tmp_path):
    path = tmp_path / "p" / "a.safetensors"
    path.parent.mkdir()
    head = json.dumps(
        {"w.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}
    ).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"\0" * 12)
    with pytest.raises(RunFormatError, match=r"should take 16 bytes, the header gives 12"):
        signscope.open_run(path.parent)


def test_unknown_dtype(tmp_path):
    path = tmp_path / "p" / "a.safetensors"
    path.parent.mkdir()
    head = json.dumps({"w.weight": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"\0" * 8)
    with pytest.raises(RunFormatError, match=r"a.safetensors: tensor 'w.weight' has dtype 'C64'"):
        signscope.open_run(path.parent)


def test_tensor_names_differ_between_levels(tmp_path):
    run = write_run(tmp_path / "r", [W, W], W)
    write_safetensors(
        run / "level_001.safetensors",
        {**W, "extra.bias": np.zeros(2, np.float32), "mask/fc.weight": np.ones((2, 2), np.uint8)},
    )
    with pytest.raises(
        RunFormatError,
        match=r"level_001.safetensors: tensor names differ from "
        r"level_000.safetensors: has extra extra.bias",
    ):
        signscope.open_run(run)


def test_shapes_differ_between_levels(tmp_path):
    run = write_run(tmp_path / "r", [W, W], W)
    write_safetensors(
        run / "level_001.safetensors",
        {"fc.weight": np.ones((2, 3), np.float32), "mask/fc.weight": np.ones((2, 3), np.uint8)},
    )
    with pytest.raises(
        RunFormatError,
        match=r"level_001.safetensors: tensor 'fc.weight' is F32 2x3 "
        r"but F32 2x2 in level_000.safetensors",
    ):
        signscope.open_run(run)
    rc, _, err = _cli("flips", run)
    _assert_one_error_line(rc, err, "fc.weight", "2x3")


def test_reference_with_other_shape(tmp_path):
    run = write_run(tmp_path / "r", [W], W)
    write_safetensors(run / "init.safetensors", {"fc.weight": np.ones((3, 2), np.float32)})
    with pytest.raises(
        RunFormatError, match=r"init.safetensors: tensor 'fc.weight' is 3x2 but 2x2"
    ):
        signscope.open_run(run)


def test_missing_level_file(tmp_path):
    run = write_run(tmp_path / "r", [W, W, W], W)
    (run / "level_001.safetensors").unlink()
    with pytest.raises(RunFormatError, match=r"level file\(s\) missing for level\(s\) 1"):
        signscope.open_run(run)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fmt", ["f32", "f16", "bf16"])
def test_nan_and_inf_in_weights(tmp_path, bad, fmt):
    dtype = np.float16 if fmt == "f16" else np.float32
    good = {"fc.weight": W["fc.weight"].astype(dtype)}
    broken = {"fc.weight": good["fc.weight"].copy()}
    broken["fc.weight"][0, 1] = bad
    run = write_run(tmp_path / "r", [good, broken], good, bf16=fmt == "bf16")
    with pytest.raises(
        RunFormatError, match=r"level_001.safetensors: tensor 'fc.weight' holds NaN or inf"
    ):
        signscope.open_run(run).flips()
    with pytest.raises(RunFormatError, match="holds NaN or inf"):
        signscope.signs(run, run)


def test_huge_finite_weights_are_not_nan(tmp_path):
    # Their sum overflows float32; they are still valid weights.
    big = {"fc.weight": np.array([[3e38, 3e38], [-3e38, 1.0]], np.float32)}
    run = write_run(tmp_path / "r", [big, big], big)
    levels = signscope.open_run(run).flips()["levels"]
    assert levels["flips_init"].to_list() == [0, 0]


def test_nan_in_reference(tmp_path):
    init = {"fc.weight": W["fc.weight"].copy()}
    init["fc.weight"][1, 1] = np.nan
    run = write_run(tmp_path / "r", [W], init)
    with pytest.raises(RunFormatError, match=r"init.safetensors: tensor 'fc.weight' holds NaN"):
        signscope.open_run(run).flips()
    rc, _, err = _cli("flips", run)
    _assert_one_error_line(rc, err, "init.safetensors", "NaN")


def test_mask_with_wrong_dtype_or_shape(tmp_path):
    folder = tmp_path / "p"
    write_safetensors(
        folder / "a.safetensors", {**W, "mask/fc.weight": np.ones((2, 2), np.float32)}
    )
    with pytest.raises(RunFormatError, match=r"mask 'mask/fc.weight' has dtype F32"):
        signscope.open_run(folder)
    write_safetensors(folder / "a.safetensors", {**W, "mask/fc.weight": np.ones((4,), np.uint8)})
    with pytest.raises(RunFormatError, match=r"mask 'mask/fc.weight' is 4 but 'fc.weight' is 2x2"):
        signscope.open_run(folder)


def test_different_architectures_from_thecli(tmp_path):
    a = random_run(tmp_path / "a", seed=1)
    b = random_run(
        tmp_path / "b", seed=1, shapes={"conv1.weight": (4, 1, 3, 3), "fc.weight": (10, 8)}
    )
    rc, _, err = _cli("masks", a, b)
    _assert_one_error_line(rc, err, "different architectures", str(a), str(b))


def test_usage_errors_exit_2(tmp_path):
    run = random_run(tmp_path / "r", n_levels=2)
    rc, _, err = _cli("flips", run, "--at-level", "5")
    assert rc == 2 and err.startswith("error: level 5:") and len(err.strip().splitlines()) == 1
    # Not init or rewind: a checkpoint path, and one that does not exist is bad input (1).
    rc, _, err = _cli("flips", run, "--reference", "middle")
    _assert_one_error_line(rc, err, "middle: no such file or folder", "init, rewind")
    rc, _, err = _cli("bn", run, "--format", "csv")
    assert rc == 2 and "--out" in err
