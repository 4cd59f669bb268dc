"""The TUI as a live monitor: the metrics log read incrementally, training state
and ETA, the watcher's cheap polls, and the app following runs while they train, headless
(Pilot) and in a real terminal (tmux) next to `signscope train`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SIZE, pilot_test, rows, settle, until
from runfactory import GrowingRun, random_run, safetensors_bytes
from terminal import Terminal
from textual.widgets import Static

import signscope
from signscope.discover import Watcher
from signscope.training import EpochLog, Training, duration_text, parse_epoch, training_of
from signscope.tui.app import SignscopeApp
from signscope.tui.runtree import RunTree

# Polls this often in the Pilot tests, so that each step waits a fraction of a second.
POLL_S = 0.1


def _line(level: int, epoch: int, **values) -> bytes:
    return json.dumps({"level": level, "epoch": epoch, **values}).encode() + b"\n"


# -- metrics.jsonl, read incrementally ----------------------------------------------------


def test_epoch_log_reads_only_what_was_added_and_only_whole_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = EpochLog(path)
    assert not log.refresh() and log.epochs == ()  # no file yet
    path.write_bytes(_line(0, 1, train_loss=2.0) + _line(0, 2, train_loss=1.5))
    assert log.refresh()
    assert [(e.level, e.epoch, e.train_loss) for e in log.epochs] == [(0, 1, 2.0), (0, 2, 1.5)]
    read = log.bytes_read
    # Unchanged: the file is not read again.
    assert not log.refresh() and log.bytes_read == read
    # Appended, the last line not finished yet: only the new bytes are read, and the
    # unfinished line waits for its newline.
    with open(path, "ab") as fh:
        fh.write(_line(0, 3, seconds=4.0) + b'{"level": 1, "ep')
    assert log.refresh() and [e.epoch for e in log.epochs] == [1, 2, 3]
    assert log.bytes_read - read == len(_line(0, 3, seconds=4.0)) + len(b'{"level": 1, "ep')
    with open(path, "ab") as fh:
        fh.write(b'och": 1}\nnot json\n')
    assert log.refresh() and log.epochs[-1][:2] == (1, 1) and len(log.epochs) == 4
    # Rewritten shorter (`--resume` drops an interrupted level's lines): read from the start.
    path.write_bytes(_line(0, 1, train_loss=2.0))
    assert log.refresh() and [e.epoch for e in log.epochs] == [1]
    path.unlink()
    assert log.refresh() and log.epochs == ()


def test_parse_epoch_keeps_what_it_can():
    assert parse_epoch(b'{"level": 2, "epoch": 5, "test_acc": null, "lr": "x"}')[:4] == (
        2,
        5,
        None,
        None,
    )
    assert parse_epoch(b'{"epoch": 5}') is None
    assert parse_epoch(b"[1, 2]") is None


# -- training state, ETA, stalled -------------------------------------------------------------


def _training(history, levels_done=0, complete=False, updated=1000.0) -> Training:
    epochs = tuple(parse_epoch(line) for line in history)
    return Training(complete, 3, 10, levels_done, epochs, updated)


def test_position_eta_and_stall_threshold():
    history = [_line(0, e, seconds=10.0) for e in range(1, 11)] + [_line(1, 1, seconds=20.0)]
    t = _training(history, levels_done=1)
    assert t.position() == (1, 1)
    assert t.epoch_seconds() == 10.0  # median of the last ten
    # 30 epochs in all, 11 done: 19 left at 10 s, counted from the last epoch.
    assert t.eta(now=1005.0) == pytest.approx(185.0)
    assert t.stall_after() == 600.0  # never sooner than ten minutes
    assert t.state(1000.0 + 599) == "training" and t.state(1000.0 + 601) == "stalled"
    # After the last epoch of a level, once its file is written: the next level, epoch 0.
    assert _training([_line(0, 10)], levels_done=1).position() == (1, 0)
    # Before any epoch there is no duration: an hour's grace.
    assert _training([]).stall_after() == 3600.0 and _training([]).eta(1000.0) is None
    slow = _training([_line(0, 1, seconds=1000.0)])
    assert slow.stall_after() == 3000.0
    assert _training([], complete=True).state(1e12) == "complete"


def test_only_incomplete_runs_of_the_trainer_are_followed():
    assert not training_of({"complete": False}, 0).complete
    assert training_of({}, 0).complete  # no "complete" key: an older or foreign manifest
    imported = {"complete": False, "config": {"imported_from": {"kind": "openlth"}}}
    assert training_of(imported, 2).complete


def test_durations_read_well():
    assert [duration_text(s) for s in (4, 125, 7300, 200000)] == [
        "4 s",
        "2 min",
        "2 h 01 min",
        "2 d 7 h",
    ]
    assert duration_text(7300, short=True) == "2h01"


# -- the watcher ------------------------------------------------------------------------------


def _age(path: Path, seconds: float = 3600.0) -> None:
    """Make ``path`` look last modified ``seconds`` ago (as a folder untouched for a while)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_watcher_follows_a_growing_run_reading_only_what_changed(tmp_path):
    grow = GrowingRun(tmp_path / "runs" / "lrr", seed=1, n_levels=3, epochs=2)
    random_run(tmp_path / "runs" / "imp", seed=0, n_levels=2)
    watcher = Watcher([tmp_path / "runs"])
    first = {r.path.name: r for r in watcher.poll().runs}
    # Level 0 in training, no level file yet: listed as training, not as broken.
    assert first["lrr"].ok and first["lrr"].levels == () and first["lrr"].training.active
    assert first["imp"].training.complete and first["imp"].training.history is None
    headers = watcher.headers_read
    again = {r.path.name: r for r in watcher.poll().runs}
    # Nothing changed: the same objects, and no header read again.
    assert all(again[name] is first[name] for name in first)
    assert watcher.headers_read == headers

    grow.epoch()
    after_epoch = {r.path.name: r for r in watcher.poll().runs}
    assert after_epoch["imp"] is first["imp"]
    assert after_epoch["lrr"].training.position() == (0, 1)
    assert watcher.headers_read == headers  # an epoch reads one line, no header

    grow.epoch()
    grow.finish_level()
    after_level = {r.path.name: r for r in watcher.poll().runs}
    lrr = after_level["lrr"]
    assert [info.level for info in lrr.levels] == [0] and lrr.training.position() == (1, 0)
    assert watcher.headers_read == headers + 1  # only the new level file's header
    # The stamps of level 0 are what keys of level-0 results hold; they stay the same when
    # level 1 lands, while the whole run's change.
    grow.epoch()
    grow.epoch()
    grow.finish_level()
    grown = {r.path.name: r for r in watcher.poll().runs}["lrr"]
    assert grown.inputs(0) == lrr.inputs(0) and grown.inputs() != lrr.inputs()
    for _ in range(2):
        grow.epoch()
    grow.finish_level()
    grow.complete()
    done = {r.path.name: r for r in watcher.poll().runs}["lrr"]
    assert len(done.levels) == 3 and done.training.complete
    assert len(done.training.history) == 6


def test_watcher_lists_a_folder_again_only_when_it_changed(tmp_path):
    runs = tmp_path / "runs"
    random_run(runs / "a", seed=0, n_levels=2)
    for folder in (runs / "a", runs, tmp_path):
        _age(folder)
    watcher = Watcher([tmp_path])
    watcher.poll()
    listed = watcher.listings
    watcher.poll()
    assert watcher.listings == listed  # three stats, no listing
    random_run(runs / "b", seed=1, n_levels=2)
    found = watcher.poll()
    assert [r.path.name for r in found.runs] == ["a", "b"]
    assert watcher.listings > listed


def test_a_metrics_line_appended_in_place_is_noticed(tmp_path):
    grow = GrowingRun(tmp_path / "r", n_levels=2, epochs=3)
    grow.epoch()
    _age(grow.path)
    watcher = Watcher([grow.path])
    assert watcher.poll().runs[0].training.position() == (0, 1)
    # Another writer appending in place does not change the folder's mtime.
    with open(grow.path / "metrics.jsonl", "ab") as fh:
        fh.write(_line(0, 2, seconds=1.0))
    assert watcher.poll().runs[0].training.position() == (0, 2)


def test_a_plain_run_being_copied_is_read_only_once_its_files_are_still(tmp_path):
    random_run(tmp_path / "src", seed=0, n_levels=2)
    watcher = Watcher([tmp_path / "ckpts"])
    (tmp_path / "ckpts").mkdir()
    assert watcher.poll().runs == ()
    data = (tmp_path / "src" / "level_001.safetensors").read_bytes()
    target = tmp_path / "ckpts" / "model.safetensors"
    target.write_bytes(data[: len(data) // 2])  # a copy under way (cp, scp write in place)
    assert watcher.poll().runs == ()  # new: wait for a poll that finds it unchanged
    with open(target, "ab") as fh:
        fh.write(data[len(data) // 2 :])
    assert watcher.poll().runs == ()  # still changing
    found = watcher.poll().runs
    assert len(found) == 1 and found[0].ok and found[0].levels[0].file == "model.safetensors"


def test_a_trainer_output_gains_checkpoint_folders_while_watched(tmp_path):
    """A Hugging Face Trainer writes checkpoint-N/ folders into output/. A new folder, and
    files written into it after the folder appeared, are seen without a key: the run's
    subfolders are stat'ed every poll, since their files do not change output/'s mtime."""
    from runfactory import write_trainer_checkpoint

    weights = {n: np.ones((4, 4), dtype=np.float32) for n in ("a.weight", "b.weight")}
    output = tmp_path / "output"
    write_trainer_checkpoint(output / "checkpoint-500", weights)
    write_trainer_checkpoint(output / "checkpoint-1000", weights, sharded=True)
    watcher = Watcher([tmp_path])
    [run] = watcher.poll().runs
    assert (run.kind, [lvl.step for lvl in run.levels]) == ("checkpoints", [500, 1000])

    late = output / "checkpoint-1500"
    late.mkdir()  # the folder first, its files a moment later
    os.utime(output, ns=(0, 0))  # output/'s mtime, now older than the race window, hides it
    for _ in range(3):  # until output/'s listing is trusted and its stamps have settled
        watcher.poll()
    listings = watcher.listings
    write_trainer_checkpoint(late, weights)

    def steps() -> list:
        [run] = watcher.poll().runs
        return [lvl.step for lvl in run.levels]

    for _ in range(4):  # a new file waits for one poll that finds it unchanged
        if steps() == [500, 1000, 1500]:
            break
    assert steps() == [500, 1000, 1500]
    assert [lvl.file for lvl in watcher.poll().runs[0].levels][-1] == "checkpoint-1500"
    assert watcher.listings > listings  # seen through checkpoint-1500/'s own stamp


def test_a_new_folder_with_only_the_trainers_first_files_is_not_flagged(tmp_path):
    """`signscope train` writes init.safetensors just before run.json: a poll in between
    must not list the folder as a broken plain run."""
    watcher = Watcher([tmp_path])
    watcher.poll()
    run = tmp_path / "new"
    run.mkdir()
    weights = {"fc.weight": np.ones((2, 2), dtype=np.float32)}
    (run / "init.safetensors").write_bytes(safetensors_bytes(weights, {"format": "signscope/1"}))
    assert watcher.poll().runs == ()


# -- the app, headless ---------------------------------------------------------------------------


def _series(app, plot_id: str) -> dict[str, list]:
    """What a chart draws: series name -> x values (plotext keeps them on its monitor)."""
    monitor = app.query_one(plot_id).plt.monitor
    return dict(zip(monitor.label, monitor.x, strict=True))


def _tree_lines(app) -> list[str]:
    tree = app.query_one("#tree", RunTree)
    lines = []
    for node in tree.root.children:
        lines.append(str(node.label))
        lines.extend("  " + str(child.label) for child in node.children)
    return lines


def _status(app) -> str:
    return str(app.query_one("#overview-status", Static).render())


@pytest.fixture
def live(tmp_path, monkeypatch):
    """runs/imp (finished, 4 levels) and runs/lrr, in training: level 0 done, one epoch of
    level 1. Same dataset and model, so the Overview plots both."""
    monkeypatch.chdir(tmp_path)
    random_run(Path("runs/imp"), seed=0, n_levels=4, method="imp")
    grow = GrowingRun(Path("runs/lrr"), seed=1, n_levels=4, epochs=2, method="lrr")
    grow.epoch()
    grow.epoch()
    grow.finish_level()
    grow.epoch()
    return grow


@contextlib.asynccontextmanager
async def watching(paths=("runs",)):
    """The app on ``paths``, polling every POLL_S, once its first screen has settled."""
    app = SignscopeApp(list(paths), poll_s=POLL_S)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        yield app, pilot, app.query_one("#tree", RunTree)


@pytest.mark.slow  # several seconds of polls while the run grows
@pilot_test
async def test_a_run_growing_in_the_background_updates_tree_overview_and_chart(live):
    async with watching() as (app, pilot, tree):
        # Flips of level 0 is computed before the run grows; it depends on level 0's files
        # only, so it must survive the levels that land later.
        await pilot.press(*["down"] * 6, "2")  # runs/imp and its 4 levels, runs/lrr, level 0
        await settle(pilot)
        assert (app.selection.run.label, app.selection.level) == ("runs/lrr", 0)
        flips = app.query_one("#flips-pane")
        level0 = flips.result
        await pilot.press("up", "1")  # the run node of runs/lrr, Overview
        await settle(pilot)
        assert "● L1 e1" in _tree_lines(app)[5]
        assert "training: epoch 1/2" in _tree_lines(app)[-1]
        assert "training" in _status(app) and "level 1/4 · epoch 1/2" in _status(app)
        assert "ETA" in _status(app)
        assert len(rows(app, "#overview-levels")) == 1
        assert _series(app, "#overview-plot")["lrr"] == [0]
        assert len(_series(app, "#overview-epochs")["loss"]) == 3

        # From here on nobody types. The trainer, in a thread, finishes level 1 and starts
        # level 2: a new level file, new epoch lines, a new run.json.
        def train_on() -> None:
            live.epoch()
            live.finish_level()
            live.epoch(seconds=2.0)

        await asyncio.to_thread(train_on)
        # The tree, the status line and the levels table are refreshed by separate messages:
        # wait for all three rather than assume an order.
        await until(
            pilot,
            lambda: (
                len(rows(app, "#overview-levels")) == 2
                and "● L2 e1" in _tree_lines(app)[5]
                and "level 2/4 · epoch 1/2" in _status(app)
            ),
        )
        assert [line.split()[:2] for line in _tree_lines(app)[6:8]] == [
            ["level", "0"],
            ["level", "1"],
        ]
        assert "training: epoch 1/2" in _tree_lines(app)[8]
        assert "● L2 e1" in _tree_lines(app)[5]
        assert "level 2/4 · epoch 1/2" in _status(app)
        await until(pilot, lambda: _series(app, "#overview-plot").get("lrr") == [0, 1])
        assert len(_series(app, "#overview-epochs")["loss"]) == 5

        # The last two levels land and the run completes: the marks go, the levels stay.
        def finish() -> None:
            for _ in range(3):
                live.epoch()
            live.finish_level()
            live.epoch()
            live.epoch()
            live.finish_level()
            live.complete()

        await asyncio.to_thread(finish)
        await until(pilot, lambda: "complete" in _status(app))
        await until(pilot, lambda: len(rows(app, "#overview-levels")) == 4)
        await until(pilot, lambda: "●" not in _tree_lines(app)[5])
        assert [line.split()[:2] for line in _tree_lines(app)[6:]] == [
            ["level", str(i)] for i in range(4)
        ]
        expected = signscope.open_run("runs/lrr").summary()["alive"].to_list()
        assert [int(r[2]) for r in rows(app, "#overview-levels")] == expected
        assert _series(app, "#overview-plot")["lrr"] == [0, 1, 2, 3]
        assert len(_series(app, "#overview-epochs")["loss"]) == 10

        # Level 0's Flips tables are still the ones computed before any of this.
        await pilot.press("down", "2")
        await settle(pilot)
        assert app.selection.level == 0 and flips.result is level0


@pilot_test
async def test_a_new_run_folder_appears_in_the_tree(live):
    async with watching() as (app, pilot, tree):
        assert [n.data.label for n in tree.root.children] == ["runs/imp", "runs/lrr"]
        cursor = tree.cursor_node
        # In natural order, so first; the cursor stays on the run it was on.
        random_run(Path("runs/b-new"), seed=3, n_levels=2)
        await until(pilot, lambda: len(tree.root.children) == 3)
        assert [n.data.label for n in tree.root.children] == ["runs/b-new", "runs/imp", "runs/lrr"]
        assert tree.cursor_node is cursor and app.selection.run.label == "runs/imp"
        # A new run with nothing but run.json yet (level 0 training) is shown as training.
        GrowingRun(Path("runs/zz"), seed=4, n_levels=2, epochs=3)
        await until(pilot, lambda: len(tree.root.children) == 4)
        assert "● L0 e0" in str(tree.root.children[3].label)
        # A run folder removed goes away.
        shutil.rmtree("runs/b-new")
        await until(pilot, lambda: len(tree.root.children) == 3)


@pilot_test
async def test_a_run_without_news_is_shown_stalled(live):
    async with watching() as (app, pilot, tree):
        assert "● L1 e1" in str(tree.root.children[1].label)
        _age(live.path / "metrics.jsonl", 3 * 3600)
        await until(pilot, lambda: "stalled" in str(tree.root.children[1].label))
        tree.select_ref(tree.root.children[1].data)
        await until(pilot, lambda: "stalled" in _status(app))
        assert "last epoch 3 h 00 min ago" in _status(app)


# -- the real terminal ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_train_into_a_folder_below_an_open_tui(tmp_path):
    """tmux with `signscope tui runs`, then `signscope train --out runs/demo/lrr`: the new run
    and its last level appear on the screen without a key."""
    pytest.importorskip("torch")
    (tmp_path / "runs").mkdir()
    env = {"OMP_NUM_THREADS": "1"}
    with Terminal(f"{sys.executable} -m signscope tui runs", cwd=tmp_path, env=env) as term:
        text = term.wait_for("No runs found below runs")
        assert "No runs found below runs" in text, text
        options = "--preset demo --levels 2 --epochs 1 --lr-warmup-epochs 0 --device cpu --quiet"
        train = subprocess.run(
            [sys.executable, "-m", "signscope", "train", *options.split(), "-o", "runs/demo/lrr"],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert train.returncode == 0, train.stderr
        assert train.stderr.splitlines()[0] == "watch it with: signscope tui runs/demo/lrr"
        last = signscope.open_run(tmp_path / "runs" / "demo" / "lrr").summary()["density"][-1]
        sparsity = f"{100 * (1 - last):.3g}%"
        text = term.wait_for("demo/lrr", "level  1", sparsity, "complete", timeout=60)
        assert all(t in text for t in ("demo/lrr", "level  1", sparsity, "complete")), text
        assert "No runs found" not in text


@pytest.mark.slow
def test_the_live_benchmark_runs_at_a_tiny_size(tmp_path):
    """examples/bench_live.py, whose numbers are in docs/benchmarks.md, still works."""
    script = Path(__file__).resolve().parent.parent / "examples" / "bench_live.py"
    args = ["--dir", str(tmp_path), "--runs", "4", "--repeat", "1", "--landings", "1"]
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| poll, nothing changed |" in result.stdout
    assert "level landing -> tree, 1 landings" in result.stdout
