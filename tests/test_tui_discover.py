"""Run discovery (signscope.discover): what the TUI's tree is built from."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from runfactory import random_run, write_safetensors

from signscope.discover import discover


def _plain(folder, names):
    rng = np.random.default_rng(0)
    for name in names:
        write_safetensors(folder / name, {"fc.weight": rng.normal(size=(3, 4)).astype(np.float32)})


def test_finds_signscope_and_plain_runs_with_levels(tmp_path):
    random_run(tmp_path / "runs" / "lrr", seed=0, n_levels=3, method="lrr")
    _plain(tmp_path / "ckpts", ["level_10.safetensors", "init.safetensors", "level_2.safetensors"])
    found = discover([tmp_path])
    by_name = {r.path.name: r for r in found.runs}
    assert set(by_name) == {"lrr", "ckpts"}
    lrr = by_name["lrr"]
    assert (lrr.kind, lrr.method, lrr.ok) == ("signscope", "lrr", True)
    assert [lvl.level for lvl in lrr.levels] == [0, 1, 2]
    assert lrr.levels[0].density == 1.0 and lrr.levels[2].test_acc is not None
    assert lrr.config["seed"] == 0
    plain = by_name["ckpts"]
    assert plain.kind == "plain"
    # Natural order (level_2 before level_10), the init file is the reference, not a level.
    assert [lvl.file for lvl in plain.levels] == ["level_2.safetensors", "level_10.safetensors"]


def test_labels_are_the_given_path_joined_with_the_subfolder(tmp_path, monkeypatch):
    random_run(tmp_path / "runs" / "a", seed=0, n_levels=2)
    random_run(tmp_path / "runs" / "b", seed=1, n_levels=2)
    monkeypatch.chdir(tmp_path)
    assert [r.label for r in discover(["."]).runs] == ["runs/a", "runs/b"]
    assert [r.label for r in discover(["runs/a"]).runs] == ["runs/a"]
    # The same run reached through two paths is listed once.
    assert [r.label for r in discover(["runs", "runs/b"]).runs] == ["runs/a", "runs/b"]


def test_a_checkpoint_given_directly_stands_for_its_folder(tmp_path, monkeypatch):
    random_run(tmp_path / "r", seed=0, n_levels=2)
    monkeypatch.chdir(tmp_path)
    found = discover(["r/level_001.safetensors"])
    assert [r.label for r in found.runs] == ["r"]


def test_corrupt_runs_are_reported_not_raised(tmp_path):
    good = random_run(tmp_path / "good", seed=0, n_levels=2)
    truncated = random_run(tmp_path / "truncated", seed=0, n_levels=2)
    data = (truncated / "level_001.safetensors").read_bytes()
    (truncated / "level_001.safetensors").write_bytes(data[: len(data) // 2])
    gap = random_run(tmp_path / "gap", seed=0, n_levels=3)
    (gap / "level_001.safetensors").unlink()
    manifest = tmp_path / "badjson"
    manifest.mkdir()
    (manifest / "run.json").write_text("{not json")
    found = {r.path.name: r for r in discover([tmp_path]).runs}
    assert found["good"].ok and good.exists()
    assert "level_001.safetensors" in found["truncated"].error
    assert "truncated" in found["truncated"].error
    assert "missing for level(s) 1" in found["gap"].error
    assert "run.json" in found["badjson"].error and found["badjson"].kind == "signscope"


def test_missing_paths_and_empty_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / ".hidden").mkdir()
    random_run(tmp_path / ".hidden" / "r", seed=0, n_levels=2)
    found = discover([tmp_path / "empty", tmp_path / "nope"])
    assert found.runs == ()
    assert found.problems == (f"{tmp_path / 'nope'}: no such file or folder",)
    # Hidden folders (.git, .venv, editor caches) are not searched.
    assert discover([tmp_path]).runs == ()


def test_a_run_folder_is_a_leaf(tmp_path):
    outer = random_run(tmp_path / "outer", seed=0, n_levels=2)
    random_run(outer / "nested", seed=1, n_levels=2)
    assert [r.path.name for r in discover([tmp_path]).runs] == ["outer"]


def test_discovery_reads_headers_only(tmp_path, monkeypatch):
    """Discovery must stay cheap on multi-GB runs: it reads headers, never tensor data."""
    run = random_run(
        tmp_path / "r",
        seed=0,
        n_levels=3,
        shapes={"conv1.weight": (64, 16, 3, 3), "fc.weight": (100, 64)},
    )
    import signscope.reader as reader

    read = []

    class Counting:
        def __init__(self, fh):
            self._fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def read(self, n=-1):
            data = self._fh.read(n)
            read.append(len(data))
            return data

    opener = reader.open_regular
    monkeypatch.setattr(reader, "open_regular", lambda path: Counting(opener(path)))
    found = discover([run])
    assert found.runs[0].ok and len(found.runs[0].levels) == 3
    total = sum(p.stat().st_size for p in run.glob("level_*.safetensors"))
    assert 0 < sum(read) < total / 20


@pytest.mark.slow
def test_the_tui_never_imports_torch():
    code = (
        "import sys, signscope.tui.app, signscope.tui.timing, signscope.cli.tui; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
