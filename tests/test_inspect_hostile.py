"""Input built to break the inspection commands: files that are not
files, names that look like markup or are not UTF-8, headers that lie or declare far too
much. Each is one `error:` line naming the file, or is read as the data it is."""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import threading

import numpy as np
import pytest
from runfactory import random_run, write_run, write_safetensors

import signscope
from signscope import reader
from signscope.cli import main
from signscope.discover import discover
from signscope.errors import RunFormatError

W = {"fc.weight": np.array([[1.0, -2.0], [3.0, 0.5]], np.float32)}


class Terminal(io.StringIO):
    """stderr as a terminal, so that the progress bar is drawn."""

    def isatty(self) -> bool:
        return True


def _cli(*args, stderr=None):
    out, err = io.StringIO(), stderr or io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([os.fspath(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def _one_error(rc, err, *needles):
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and lines[-1].startswith("error: "), (rc, err)
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


def _finishes(fn, seconds: float = 20.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it blocks."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the test below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return thread.is_alive(), box


# -------------------------------- 8: FIFOs are not files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_named_like_a_checkpoint_is_an_error_not_a_hang(tmp_path):
    run = write_run(tmp_path / "r", [W, W], W)
    fifo = run / "level_001.safetensors"
    fifo.unlink()
    os.mkfifo(fifo)
    try:
        for command in ("show", "flips"):
            blocked, box = _finishes(lambda c=command: _cli(c, run))
            assert not blocked, f"signscope {command} hangs on a FIFO"
            rc, _, err = box["value"]
            _one_error(rc, err, str(fifo), "a FIFO")
        blocked, box = _finishes(lambda: discover([tmp_path]))
        assert not blocked, "discovery hangs on a FIFO"
        (found,) = box["value"].runs
        assert not found.ok and str(fifo) in found.error and "FIFO" in found.error
    finally:
        # Release any reader still blocked in open() (only before the fix).
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_named_run_json_is_an_error(tmp_path):
    run = write_run(tmp_path / "r", [W], W)
    (run / "run.json").unlink()
    os.mkfifo(run / "run.json")
    try:
        blocked, box = _finishes(lambda: _cli("show", run))
        assert not blocked
        _one_error(*box["value"][::2], "run.json", "a FIFO")
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(run / "run.json", os.O_WRONLY | os.O_NONBLOCK))


# -------------------------------- 9: names are not markup


@pytest.mark.parametrize("name", ["imp[seed1]", "[bold red]run", "[/x]"])
def test_names_that_look_like_markup_are_printed_as_they_are(tmp_path, monkeypatch, name):
    random_run(tmp_path / name, n_levels=2)
    monkeypatch.chdir(tmp_path)
    rc, out, err = _cli("flips", name, stderr=Terminal())  # a terminal: with the progress bar
    assert rc == 0, err
    rows = [line for line in out.splitlines() if "│" in line]
    assert len(rows) >= 2 and all(f"│ {name} " in line for line in rows[:2]), out
    rc, out, err = _cli("show", name)
    assert rc == 0 and name in out, err


# -------------------------------- 10: names that are not UTF-8


@pytest.mark.skipif(os.name == "nt", reason="Windows file names are UTF-16")
def test_a_folder_name_that_is_not_utf8(tmp_path, monkeypatch):
    name = os.fsdecode(b"seed\xff1")  # the byte 0xff survives as a lone surrogate (PEP 383)
    shown = "seed\ufffd1"
    random_run(tmp_path / name, n_levels=2)
    other = random_run(tmp_path / "other", n_levels=2)
    monkeypatch.chdir(tmp_path)
    rc, out, err = _cli("flips", name, "--format", "json")
    assert rc == 0, err
    assert {row["run"] for row in json.loads(out)["levels"]} == {shown}
    for command in (["show", name], ["flips", name], ["masks", name, other], ["bn", name]):
        rc, out, err = _cli(*command)
        assert rc == 0, (command, err)
    assert shown in _cli("show", name)[1]
    rc, _, err = _cli("flips", name + "x")  # errors name it too, with the same replacement
    _one_error(rc, err, shown + "x")


# -------------------------------- 11: headers that declare too much


def _header_file(path, entries: bytes, data: bytes = b""):
    path.parent.mkdir(parents=True, exist_ok=True)
    head = b"{" + entries + b"}"
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + data)
    return path


def _empty_tensors(n: int) -> bytes:
    return b",".join(
        b'"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}' % i for i in range(n)
    )


def test_a_header_with_too_many_entries_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    path = _header_file(tmp_path / "p" / "a.safetensors", _empty_tensors(reader.MAX_TENSORS + 10))

    def no_parsing(*args, **kwargs):
        raise AssertionError("the header was parsed")

    monkeypatch.setattr(reader.json, "loads", no_parsing)
    with pytest.raises(RunFormatError, match=f"more than {reader.MAX_TENSORS:,} tensors"):
        reader.read_header(path)
    monkeypatch.undo()
    rc, _, err = _cli("show", path.parent)
    _one_error(rc, err, str(path), "tensors")
    # The exact count, once parsed, holds at the cap itself.
    monkeypatch.setattr(reader, "MAX_TENSORS", 3)
    _header_file(path, _empty_tensors(4))
    with pytest.raises(RunFormatError, match="declares 4 tensors; signscope reads at most 3"):
        reader.read_header(path)


def test_the_entry_cap_is_far_above_real_models():
    # A 70B checkpoint shard has ~1,000 tensors, a signscope level file twice its model's.
    assert reader.MAX_TENSORS >= 100 * 1_000


# -------------------------------- 12: accepted silently before


def test_overlapping_data_offsets_are_an_error(tmp_path):
    entries = (
        b'"a.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
        b'"b.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}'
    )
    path = _header_file(tmp_path / "p" / "a.safetensors", entries, b"\0" * 24)
    with pytest.raises(RunFormatError, match=r"tensors 'a.weight' and 'b.weight' overlap"):
        signscope.open_run(path.parent)
    # Empty tensors take no bytes, so they overlap nothing.
    entries = (
        b'"a.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
        b'"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}'
    )
    _header_file(path, entries, b"\0" * 16)
    assert "e" in reader.read_header(path).tensors


@pytest.mark.parametrize("value", [2, 255])
def test_mask_values_other_than_0_and_1_are_an_error(tmp_path, value):
    mask = np.array([[1, 0], [value, 1]], np.uint8)
    folder = tmp_path / "p"
    write_safetensors(folder / "a.safetensors", {**W, "mask/fc.weight": mask})
    write_safetensors(folder / "init.safetensors", W)
    run = signscope.open_run(folder)
    needle = r"a.safetensors: mask 'mask/fc.weight' holds values other than 0 and 1"
    with pytest.raises(RunFormatError, match=needle):
        run.flips()
    with pytest.raises(RunFormatError, match=needle):
        run.summary()
    with pytest.raises(RunFormatError, match=needle):
        signscope.masks(folder, folder)
    rc, _, err = _cli("flips", folder)
    _one_error(rc, err, "holds values other than 0 and 1")


def test_a_manifest_from_a_newer_format_asks_for_an_upgrade(tmp_path):
    run = random_run(tmp_path / "r", n_levels=2)
    manifest = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**manifest, "format_version": 2}))
    with pytest.raises(RunFormatError, match=r"run format version 2.*upgrade signscope"):
        signscope.open_run(run)
    rc, _, err = _cli("show", run)
    _one_error(rc, err, "upgrade signscope")
    (run / "run.json").write_text(json.dumps({**manifest, "format_version": "1"}))
    with pytest.raises(RunFormatError, match="format_version '1' is not a version number"):
        signscope.open_run(run)


# -------------------------------- 13: an empty path


def test_an_empty_path_is_an_error_not_the_current_folder(tmp_path, monkeypatch):
    random_run(tmp_path, n_levels=2)  # the current folder is a run: "" must not mean it
    monkeypatch.chdir(tmp_path)
    for command in (["flips", ""], ["show", ""], ["masks", "", "."]):
        rc, out, err = _cli(*command)
        _one_error(rc, err, "empty path")
        assert out == ""
    with pytest.raises(RunFormatError, match="empty path"):
        signscope.open_run("")
