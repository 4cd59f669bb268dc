"""Checkpoint-folder runs (the Hugging Face Trainer's layout), sharded checkpoints and
references from outside the run (SPEC section 2).

The fixture writes what a fine-tuning run leaves on disk: a base model folder and
``output/checkpoint-N/`` folders of bf16 weights, one of them sharded with its index, each
beside ``optimizer.pt`` and the Trainer's other files. Those are real pickles that would
create a file if anything unpickled them. Expected numbers come from a plain numpy
computation over the same (bf16-rounded) arrays.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cliutil import assert_one_error_line, cli
from runfactory import (
    TRAINER_EXTRAS,
    from_bf16_bytes,
    to_bf16_bytes,
    write_safetensors,
    write_sharded,
    write_trainer_checkpoint,
)

import signscope
from signscope.discover import discover
from signscope.metrics import stream

SHAPES = {
    "model.embed_tokens.weight": (16, 8),
    "model.layers.0.self_attn.q_proj.weight": (8, 8),
    "model.layers.0.mlp.up_proj.weight": (12, 8),
    "model.layers.0.input_layernorm.weight": (8,),
    "model.norm.weight": (8,),
    "lm_head.weight": (16, 8),
}
PRUNABLE = [n for n, s in SHAPES.items() if len(s) == 2]
HEAD = "score.weight"  # a new head: in the checkpoints, not in the base model
STEPS = [500, 1000, 1500, 10000]  # lexical order would be 1000, 10000, 1500, 500
SHARDED_STEP = 1000


def bf16(a: np.ndarray) -> np.ndarray:
    """What a bf16 checkpoint of ``a`` holds, as float32."""
    return from_bf16_bytes(to_bf16_bytes(a), a.shape)


class _Payload:
    """Pickles to a call of Path.touch(marker): unpickling it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def trajectory(rng, base: dict, steps: int, zeros: bool = True) -> list[dict]:
    """Fine-tuning checkpoints: the base plus growing noise, so some signs flip; a few
    weights are exactly zero at one checkpoint (not alive there, alive again later)."""
    levels, cur = [], {n: a.copy() for n, a in base.items() if n in SHAPES}
    cur[HEAD] = rng.normal(size=(3, 8)).astype(np.float32)
    for level in range(steps):
        cur = {
            n: a + rng.normal(scale=0.6, size=a.shape).astype(np.float32) for n, a in cur.items()
        }
        if zeros and level == 1:
            cur["model.layers.0.self_attn.q_proj.weight"].ravel()[:5] = 0.0
        levels.append({n: bf16(a) for n, a in cur.items()})
    return levels


@pytest.fixture
def trainer(tmp_path):
    rng = np.random.default_rng(15)
    base = {n: bf16(rng.normal(size=s).astype(np.float32)) for n, s in SHAPES.items()}
    base["model.extra.weight"] = bf16(rng.normal(size=(4, 4)).astype(np.float32))  # not in runs
    marker = tmp_path / "UNPICKLED"
    payload = pickle.dumps(_Payload(marker))
    write_safetensors(tmp_path / "base" / "model.safetensors", base, bf16=True)
    (tmp_path / "base" / "config.json").write_text("{}")
    levels = trajectory(rng, base, len(STEPS))
    output = tmp_path / "output"
    # Written out of order: only the names give the order.
    for step, weights in sorted(zip(STEPS, levels, strict=True), key=lambda p: str(p[0])):
        write_trainer_checkpoint(
            output / f"checkpoint-{step}", weights, sharded=step == SHARDED_STEP, extras=payload
        )
    (output / "runs" / "Jan01_00-00-00").mkdir(parents=True)  # TensorBoard logs
    (output / "runs" / "Jan01_00-00-00" / "events.out.tfevents.1").write_bytes(payload)
    return SimpleNamespace(
        root=tmp_path, output=output, base=tmp_path / "base", base_arrays=base, levels=levels,
        marker=marker, payload=payload,
    )  # fmt: skip


# --------------------------------------------------------------------------- numpy by hand


def signs_of(arrays: dict, names: list[str]) -> np.ndarray:
    return np.concatenate([np.sign(arrays[n]).ravel() for n in names])


def numpy_flips(levels: list[dict], ref: dict, names: list[str]):
    """SPEC section 3 written out: alive = nonzero (no masks), flips = sign products < 0."""
    s_ref = signs_of(ref, names)
    s = [signs_of(lv, names) for lv in levels]
    total = s_ref.size
    rows = []
    for level, cur in enumerate(s):
        alive = cur != 0
        flips_init = int(np.sum(alive & (s_ref * cur < 0)))
        flips_prev = None
        if level > 0:
            flips_prev = int(np.sum((s[level - 1] != 0) & alive & (s[level - 1] * cur < 0)))
        rows.append(
            {
                "level": level,
                "density": alive.sum() / total,
                "alive": int(alive.sum()),
                "flips_prev": flips_prev,
                "flips_init": flips_init,
            }
        )
    final = s[-1] != 0
    traj = np.stack([s_ref, *s])[:, final]  # rows: reference, level 0, ..., level K
    flipped = traj[:-1] * traj[1:] < 0  # row L: a flip into level L
    flip_count = Counter(flipped.sum(axis=0).tolist())
    last = np.full(traj.shape[1], -1)
    for level in range(len(s)):
        last[flipped[level]] = level
    return rows, Counter(last.tolist()), flip_count


def as_counter(df, column) -> Counter:
    return Counter(dict(zip(df[column].to_list(), df["count"].to_list(), strict=True)))


# --------------------------------------------------------------------------- layout


def test_checkpoint_folders_are_levels_in_natural_step_order(trainer):
    run = signscope.open_run(trainer.output)
    assert run.kind == "checkpoints"
    assert run.level_labels == [f"checkpoint-{s}" for s in STEPS]
    assert run.steps == STEPS
    # The sharded checkpoint is one level; HEAD is prunable in the run, norms are not.
    assert set(run.prunable) == {*PRUNABLE, HEAD}
    table = run.show()["checkpoints"]
    assert table["checkpoint"].to_list() == run.level_labels
    assert table["step"].to_list() == STEPS
    assert table["files"].to_list() == [2 if s == SHARDED_STEP else 1 for s in STEPS]
    for row in table.iter_rows(named=True):
        folder = trainer.output / row["checkpoint"]
        assert row["size"] == sum(p.stat().st_size for p in folder.glob("*.safetensors"))


@pytest.mark.parametrize("chunk,workers", [(None, None), (7, 2)])
def test_flips_against_the_base_model_match_numpy(trainer, monkeypatch, chunk, workers):
    if chunk:  # chunk boundaries inside tensors and across the shards, two threads
        monkeypatch.setattr(stream, "CHUNK", chunk)
        monkeypatch.setattr(stream, "WORKERS", workers)
    run = signscope.open_run(trainer.output)
    tables = run.flips(reference=trainer.base)
    # HEAD is not in the base: every table covers the tensors both have.
    rows, last_flip, flip_count = numpy_flips(trainer.levels, trainer.base_arrays, PRUNABLE)
    got = tables["levels"].drop("run").to_dicts()
    assert [{**r, "density": pytest.approx(r["density"])} for r in rows] == got
    assert as_counter(tables["last_flip"], "last_flip") == last_flip
    assert as_counter(tables["flip_count"], "flip_count") == flip_count
    assert sum(r["flips_prev"] or 0 for r in rows) > 0 and len(last_flip) > 2  # not trivial
    assert tables["reference"].to_dicts() == [
        {
            "run": str(trainer.output),
            "reference": str(trainer.base),
            "compared": len(PRUNABLE),
            "skipped": 1,
            "skipped_tensors": f"{HEAD}: not in the reference",
        }
    ]
    per_layer = run.flips(reference=trainer.base, per_layer=True)["levels"]
    for name in PRUNABLE:
        want, _, _ = numpy_flips(trainer.levels, trainer.base_arrays, [name])
        got = per_layer.filter(layer=name).select("alive", "flips_init").to_dicts()
        assert got == [{"alive": r["alive"], "flips_init": r["flips_init"]} for r in want]


def test_at_level_and_every_form_of_the_reference_agree(trainer):
    run = signscope.open_run(trainer.output)
    rows, last_flip, _ = numpy_flips(trainer.levels[:2], trainer.base_arrays, PRUNABLE)
    cut = run.flips(at_level=1, reference=str(trainer.base))
    assert cut["levels"]["flips_init"].to_list() == [r["flips_init"] for r in rows]
    assert as_counter(cut["last_flip"], "last_flip") == last_flip
    # The same reference as a file, as a folder, and sharded.
    write_sharded(trainer.root / "base-sharded", trainer.base_arrays, n_shards=3)
    results = [
        run.flips(reference=ref)["levels"]
        for ref in (trainer.base, trainer.base / "model.safetensors", trainer.root / "base-sharded")
    ]
    assert results[0].equals(results[1]) and results[0].equals(results[2])


def test_a_flat_folder_is_still_one_level_per_file(trainer):
    flat = trainer.root / "flat"
    for step, weights in zip(STEPS, trainer.levels, strict=True):
        write_safetensors(flat / f"step_{step}.safetensors", weights, bf16=True)
    run = signscope.open_run(flat)
    assert run.kind == "plain" and run.steps == [None] * 4
    assert run.level_labels == [f"step_{s}.safetensors" for s in STEPS]
    want = signscope.open_run(trainer.output).flips(reference=trainer.base)
    got = run.flips(reference=trainer.base)
    assert got["levels"].drop("run").equals(want["levels"].drop("run"))


def test_the_trainers_final_save_beside_the_checkpoints_is_not_a_level(trainer):
    # trainer.save_model() writes the final (or best) model into output/ itself.
    write_safetensors(trainer.output / "model.safetensors", trainer.levels[0], bf16=True)
    run = signscope.open_run(trainer.output)
    assert run.kind == "checkpoints" and run.steps == STEPS


def test_a_folder_of_runs_is_not_a_checkpoint_run(trainer):
    """base/ and output/ side by side are two runs, found separately."""
    found = {r.label: r for r in discover([str(trainer.root)]).runs}
    out = found[str(trainer.output)]
    assert (out.kind, out.ok) == ("checkpoints", True)
    assert [(lv.file, lv.step) for lv in out.levels] == [(f"checkpoint-{s}", s) for s in STEPS]
    assert found[str(trainer.base)].kind == "plain"
    with pytest.raises(signscope.SignscopeError, match="no checkpoints"):
        signscope.open_run(trainer.root)


def test_a_sharded_checkpoint_is_one_level(trainer):
    run = signscope.open_run(trainer.output / f"checkpoint-{SHARDED_STEP}")
    assert (run.kind, run.levels) == ("checkpoint", [0])
    assert run.checkpoints()["files"].to_list() == [2]
    assert set(run.prunable) == {*PRUNABLE, HEAD}


# --------------------------------------------------------------------------- never unpickled

_WATCHED: set[str] = set()
_OPENED: list[str] = []


def _audit(event, args):
    if event == "open" and _WATCHED and isinstance(args[0], str | bytes | os.PathLike):
        path = os.fsdecode(args[0])
        if os.path.basename(path) in _WATCHED:
            _OPENED.append(path)


sys.addaudithook(_audit)


def test_other_files_in_checkpoint_folders_are_never_opened(trainer):
    # The files are live: unpickling one creates the marker.
    pickle.loads((trainer.output / "checkpoint-500" / "optimizer.pt").read_bytes())
    assert trainer.marker.exists()
    trainer.marker.unlink()
    _WATCHED.update({*TRAINER_EXTRAS, "trainer_state.json", "events.out.tfevents.1"})
    try:
        discover([str(trainer.root)])
        run = signscope.open_run(trainer.output)
        run.flips(reference=trainer.base, per_layer=True)
        run.show()
        run.bn()
        signscope.signs(run, trainer.output)
        signscope.masks(run, trainer.output)
    finally:
        _WATCHED.clear()
    assert _OPENED == []
    assert not trainer.marker.exists()


# --------------------------------------------------------------------------- broken input


@pytest.fixture
def sharded(trainer):
    return trainer.output / f"checkpoint-{SHARDED_STEP}"


def _index(folder) -> dict:
    return json.loads((folder / "model.safetensors.index.json").read_text())


def test_index_naming_a_missing_shard(trainer, sharded):
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(
        signscope.SignscopeError, match=r"model-00002-of-00002.safetensors: missing"
    ):
        signscope.open_run(trainer.output)
    rc, out, err = cli("flips", trainer.output, "--reference", trainer.base)
    assert_one_error_line(rc, err, str(sharded / "model-00002-of-00002.safetensors"), "missing")
    assert out == ""
    # Discovery flags the run instead of raising.
    found = {r.label: r for r in discover([str(trainer.root)]).runs}
    assert "missing" in found[str(trainer.output)].error


def test_a_tensor_in_two_shards(trainer, sharded):
    index = _index(sharded)
    first = next(n for n, s in index["weight_map"].items() if s.startswith("model-00001"))
    second = trainer.levels[1]
    shard2 = {n: second[n] for n, s in index["weight_map"].items() if s.startswith("model-00002")}
    write_safetensors(
        sharded / "model-00002-of-00002.safetensors", {**shard2, first: second[first]}
    )
    rc, _, err = cli("flips", trainer.output, "--reference", trainer.base)
    assert_one_error_line(rc, err, str(sharded), repr(first), "two shards")


def test_a_tensor_named_twice_in_the_weight_map(trainer, sharded):
    path = sharded / "model.safetensors.index.json"
    text = path.read_text()
    name = PRUNABLE[0]
    line = next(ln for ln in text.splitlines() if f'"{name}"' in ln)
    path.write_text(text.replace(line, line + "\n" + line.rstrip(",") + ","))
    rc, _, err = cli("show", trainer.output)
    assert_one_error_line(rc, err, str(path), repr(name), "twice")


def test_an_index_that_puts_a_tensor_in_the_wrong_shard(trainer, sharded):
    index = _index(sharded)
    name = next(n for n, s in index["weight_map"].items() if s.startswith("model-00001"))
    index["weight_map"][name] = "model-00002-of-00002.safetensors"
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(signscope.SignscopeError, match="model-00001-of-00002.safetensors: holds"):
        signscope.open_run(trainer.output)


def test_shards_without_their_index(trainer, sharded):
    (sharded / "model.safetensors.index.json").unlink()
    with pytest.raises(signscope.SignscopeError, match="shards of one checkpoint.*no .*index"):
        signscope.open_run(sharded)
    with pytest.raises(signscope.SignscopeError, match="no .*index"):
        signscope.open_run(trainer.output)


def test_reference_with_missing_and_extra_tensors(trainer):
    """The base lacks the new head (skipped) and has a tensor the run lacks (ignored); a
    tensor of another shape is skipped with both shapes; no match at all is an error."""
    resized = dict(trainer.base_arrays)
    resized["model.embed_tokens.weight"] = np.zeros((17, 8), np.float32)  # a token added
    write_safetensors(trainer.root / "resized.safetensors", resized, bf16=True)
    run = signscope.open_run(trainer.output)
    ref = run.flips(reference=trainer.root / "resized.safetensors")["reference"].row(0, named=True)
    assert (ref["compared"], ref["skipped"]) == (len(PRUNABLE) - 1, 2)
    assert ref["skipped_tensors"] == (
        "model.embed_tokens.weight: 17x8 in the reference, 16x8 in the run; "
        f"{HEAD}: not in the reference"
    )
    renamed = {f"base_model.{n}": a for n, a in trainer.base_arrays.items()}
    write_safetensors(trainer.root / "renamed.safetensors", renamed, bf16=True)
    rc, out, err = cli("flips", trainer.output, "--reference", trainer.root / "renamed.safetensors")
    assert_one_error_line(
        rc, err, "renamed.safetensors", "none of the prunable tensors", "base_model."
    )
    assert out == ""
    # A folder of several loose files is not one checkpoint.
    write_safetensors(trainer.root / "two" / "a.safetensors", trainer.base_arrays)
    write_safetensors(trainer.root / "two" / "b.safetensors", trainer.base_arrays)
    rc, _, err = cli("flips", trainer.output, "--reference", trainer.root / "two")
    assert_one_error_line(rc, err, str(trainer.root / "two"), "not one checkpoint")


def test_checkpoints_have_no_init_without_reference(trainer):
    rc, _, err = cli("flips", trainer.output)
    assert_one_error_line(rc, err, str(trainer.output), "--reference PATH")


# --------------------------------------------------------------------------- other commands


def test_signs_of_two_runs_and_of_two_single_checkpoints(trainer):
    """Two fine-tunes of one base, level by level and final against final."""
    rng = np.random.default_rng(7)
    other = trajectory(rng, trainer.base_arrays, len(STEPS), zeros=False)
    for step, weights in zip(STEPS, other, strict=True):
        write_trainer_checkpoint(trainer.root / "other" / f"checkpoint-{step}", weights)
    df = signscope.signs(trainer.output, trainer.root / "other")
    names = [*PRUNABLE, HEAD]
    for level, (mine, theirs) in enumerate(zip(trainer.levels, other, strict=True)):
        a, b = signs_of(mine, names), signs_of(theirs, names)
        both = (a != 0) & (b != 0)
        row = df.filter(level=level).row(0, named=True)
        assert (row["both_alive"], row["agree"]) == (int(both.sum()), int((both & (a == b)).sum()))
    last = f"checkpoint-{STEPS[-1]}"
    single = signscope.signs(
        trainer.output / last / "model.safetensors", trainer.root / "other" / last
    )
    assert single.drop("run_a", "run_b").equals(
        df.filter(level=len(STEPS) - 1).with_columns(level=0).drop("run_a", "run_b")
    )


def test_signs_notes_checkpoints_paired_across_steps(trainer):
    """Levels pair by position; when the steps differ, the CLI says so (and still answers)."""
    for step, weights in zip((100, 1000), trainer.levels[:2], strict=True):
        write_trainer_checkpoint(trainer.root / "other" / f"checkpoint-{step}", weights)
    rc, out, err = cli("signs", trainer.output, trainer.root / "other", "--format", "json")
    assert rc == 0 and [r["level"] for r in json.loads(out)["signs"]] == [0, 1]
    assert err.strip() == (
        f"note: levels are paired by position, not by step: level 0 is step 500 of "
        f"{trainer.output} and step 100 of {trainer.root / 'other'}"
    )
    rc, _, err = cli("masks", trainer.output, trainer.output, "--format", "json")
    assert rc == 0 and err == ""


def test_bn_says_there_is_no_batchnorm(trainer):
    rc, out, err = cli("bn", trainer.output, "--format", "json")
    assert rc == 0 and json.loads(out) == {"bn": [], "bn_hist": []}
    assert f"note: {trainer.output} has no BatchNorm layers" in err


def test_cli_flips_json_has_the_reference_table(trainer):
    rc, out, err = cli("flips", trainer.output, "--reference", trainer.base, "--format", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert list(data) == ["levels", "last_flip", "flip_count", "reference"]
    assert data["reference"][0]["compared"] == len(PRUNABLE)


def test_flip_figures_take_the_reference(trainer):
    from signscope.figures.build import FigureInputs, build

    inputs = FigureInputs([str(trainer.output)], reference=str(trainer.base))
    figures = build(inputs, ["last-flip", "flip-count"])
    assert [f.reason for f in figures] == [None, None]
    without = build(FigureInputs([str(trainer.output)]), ["last-flip"])
    assert "--reference PATH" in without[0].reason


@pytest.mark.slow
def test_the_benchmark_script_at_toy_scale(tmp_path):
    """examples/bench_checkpoints.py writes its Trainer folders and times both commands."""
    script = Path(__file__).resolve().parent.parent / "examples" / "bench_checkpoints.py"
    cmd = [sys.executable, str(script), "--scale", "0.002", "--dir", str(tmp_path)]
    proc = subprocess.run([*cmd, "--no-cold", "--repeat", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| `")]
    assert [r.split("|")[2].strip() for r in rows] == ["warm", "warm"]
    run = signscope.open_run(next(tmp_path.glob("tinyllama-*")) / "ft-a")
    assert run.steps == [1000, 2000, 3000, 4000, 5000]
    assert run.checkpoints()["files"].to_list() == [1, 1, 2, 1, 1]
