"""Run discovery (signscope.discover): what the TUI's tree is built from."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from runfactory import random_levels, random_run, write_run, write_safetensors

import signscope
from signscope.discover import discover
from signscope.runformat import MANIFEST, method_label


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


def _edit_manifest(run, edit) -> None:
    manifest = json.loads((run / MANIFEST).read_text())
    edit(manifest)
    (run / MANIFEST).write_text(json.dumps(manifest))


def _edit_metadata(run, edit) -> None:
    """Rewrite every level file of ``run`` with ``edit`` applied to its metadata."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    for path in run.glob("level_*.safetensors"):
        with safe_open(path, "np") as fh:
            meta = fh.metadata()
        tensors = load_file(path)
        edit(meta)
        write_safetensors(path, tensors, meta)


def test_one_method_label_where_config_and_metadata_disagree(tmp_path):
    """``signscope train --method lrr --bn-rewind`` records ``config.method: lrr`` with
    ``bn_rewind: true``, and the label ``lrr+bn-rewind`` in the level files and at the top of
    run.json. Discovery (the TUI tree) once read the config first and showed ``lrr``, while
    ``open_run`` (the Overview, the figures, ``acc``) read the metadata: one run, two labels.
    """
    runs = tmp_path / "runs"
    bnr = random_run(runs / "bnr", n_levels=2, method="lrr+bn-rewind")
    config = json.loads((bnr / MANIFEST).read_text())["config"]
    assert (config["method"], config["bn_rewind"]) == ("lrr", True)
    # --method imp --mask-from RUN: the config holds the options, the files the label.
    masked = random_run(runs / "masked", n_levels=2, method="imp+lrr-mask")
    _edit_manifest(masked, lambda m: m["config"].update(method="imp", mask_from="runs/bnr"))
    # Level files that record no method: the label comes from the config.
    init, levels, masks, acc = random_levels(0, 2)
    bare = write_run(runs / "bare", levels, init, masks, test_acc=acc, config={"bn_rewind": True})
    _edit_metadata(bare, lambda meta: meta.pop("method"))
    _edit_manifest(bare, lambda m: m.pop("method"))
    found = {r.path.name: r.method for r in discover([runs]).runs}
    opened = {name: signscope.open_run(runs / name).method for name in found}
    expected = {"bnr": "lrr+bn-rewind", "masked": "imp+lrr-mask", "bare": "lrr+bn-rewind"}
    assert found == opened == expected


def test_a_run_before_its_first_level_has_its_label(tmp_path):
    """Before level 0 is written, run.json's top-level ``method`` is the only place that
    holds the label; the tree must not show ``lrr`` first and ``lrr+bn-rewind`` later."""
    run = tmp_path / "bnr"
    run.mkdir()
    config = {"method": "lrr", "bn_rewind": True, "prune": "random"}
    manifest = {"format": "signscope/1", "config": config, "levels": [], "complete": False}
    (run / MANIFEST).write_text(json.dumps({**manifest, "method": "lrr-rand+bn-rewind"}))
    assert [r.method for r in discover([run]).runs] == ["lrr-rand+bn-rewind"]
    assert method_label(manifest) == "lrr+bn-rewind"  # without it: only what the config says
    assert method_label({"config": {"method": "imp"}}, [{"format": "pt"}]) == "imp"
    assert method_label(None, [{}, {"method": "lrr"}]) == "lrr"
    assert method_label(None) is None and method_label({"config": "junk"}) is None


def test_discovery_never_takes_density_from_metadata(tmp_path):
    """Density is counted from the masks (decisions.md): the tree shows the manifest's count,
    and nothing for a run without one, whatever a level file's metadata claims."""
    run = random_run(tmp_path / "runs" / "r", n_levels=2)
    _edit_metadata(run, lambda meta: meta.update(density="0.125"))
    plain = tmp_path / "runs" / "plain"
    _plain(plain, ["a.safetensors"])
    weights = {"fc.weight": np.ones((3, 4), np.float32)}
    write_safetensors(plain / "b.safetensors", weights, {"density": "0.125", "test_acc": "0.5"})
    found = {r.path.name: r for r in discover([tmp_path / "runs"]).runs}
    expected = signscope.open_run(run).summary()["density"].to_list()
    assert [lvl.density for lvl in found["r"].levels] == expected
    assert [(lvl.density, lvl.test_acc) for lvl in found["plain"].levels] == [
        (None, None),
        (None, 0.5),
    ]


@pytest.mark.slow
def test_the_tui_never_imports_torch():
    code = (
        "import sys, signscope.tui.app, signscope.tui.timing, signscope.cli.tui; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
