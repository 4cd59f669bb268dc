"""The terminal UI (`signscope tui`): Pilot tests of what a user does, the CLI entry point,
and one run in a real pseudo-terminal (tmux)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import SIZE, pilot_test, rows, settle, until
from runfactory import random_run, write_safetensors
from terminal import Terminal
from textual.widgets import DataTable, Input, Static, TabbedContent

import signscope
from signscope.tui.app import SignscopeApp
from signscope.tui.runtree import RunTree


def slot(key) -> tuple | None:
    """A pane's cache key without its last element, the stamps of the files it reads."""
    return None if key is None else key[:-1]


def message(app, pane: str) -> str:
    return str(app.query_one(f"#{pane}-pane .message", Static).render())


@pilot_test
async def test_first_screen_shows_the_first_run(demo):
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.selection.run.label == "runs/imp"
        assert app.query_one("#tabs", TabbedContent).active == "overview"
        config = dict((k, v) for k, v in rows(app, "#overview-config"))
        assert config["path"] == "runs/imp" and config["method"] == "imp"
        assert len(rows(app, "#overview-levels")) == 4
        assert set(app.timings) >= {"first screen", "overview filled"}
        # The ? screen lists every key.
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        text = str(app.screen.query_one("#help-keys", Static).render())
        for key, what in (
            ("q", "quit"),
            ("r", "reload"),
            ("c", "mark"),
            ("e", "export"),
            ("/", "filter"),
        ):
            assert any(line.startswith(f"{key} ") and what in line for line in text.splitlines())
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ != "HelpScreen"


@pilot_test
async def test_tabs_pressed_while_their_bodies_are_still_being_mounted(demo):
    """Only the Overview is part of the first screen; the other tabs' bodies are mounted just
    after it. A key for a tab that arrives in the middle of that must wait for its body, not
    find it half-built (or build a second one)."""
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "first screen" in app.timings)
        await pilot.press("5", "3", "2", "4")
        await settle(pilot)
        assert app.query_one("#tabs", TabbedContent).active == "batchnorm"
        for tab in ("overview", "flips", "layers", "batchnorm", "compare"):
            assert len(app.query(f"#{tab}-pane")) == 1
        assert [r[0] for r in rows(app, "#bn-stats")] == signscope.open_run("runs/imp").bn()["bn"][
            "layer"
        ].to_list()


@pytest.mark.slow
@pilot_test
async def test_navigate_to_a_run_and_a_level_then_switch_tabs(demo):
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # runs/imp and its 4 levels, then runs/lrr.
        await pilot.press(*["down"] * 5)
        await settle(pilot)
        assert (app.selection.run.label, app.selection.level) == ("runs/lrr", None)
        await pilot.press("down", "down", "down")  # runs/lrr level 2
        await pilot.press("2")
        await settle(pilot)
        assert app.selection.level == 2
        assert app.query_one("#tabs", TabbedContent).active == "flips"
        expected = signscope.open_run("runs/lrr").flips(at_level=2)["levels"]
        shown = rows(app, "#flips-levels")
        assert [int(r[0]) for r in shown] == expected["level"].to_list()
        assert [r[-1] for r in shown] == [str(v) for v in expected["flips_init"]]
        await pilot.press("4")
        await settle(pilot)
        bn = signscope.open_run("runs/lrr").bn(2)["bn"]
        assert [r[0] for r in rows(app, "#bn-stats")] == bn["layer"].to_list()
        # Coming back to a tab, or to a level, shows the cached tables: nothing is recomputed.
        computed = app.store.computed
        for key in ("2", "1", "up", "down", "4"):
            await pilot.press(key)
            await settle(pilot)
        assert app.store.computed == computed
        await pilot.press("3")
        await settle(pilot)
        assert app.store.computed > computed  # Layers at this level was new
        computed = app.store.computed
        for key in ("2", "4", "1", "3"):
            await pilot.press(key)
            await settle(pilot)
        assert app.store.computed == computed


@pilot_test
async def test_coming_back_while_a_result_is_computing(demo, monkeypatch):
    # Hold the Flips computation of the last level until the user has left for level 0 and
    # come back: the result of the first (cancelled) worker must reach the screen, and the
    # level must be computed only once.
    from signscope.tui.flips import FlipsPane

    original = FlipsPane.compute
    release = threading.Event()
    calls = []

    def held(self, sel, progress):
        calls.append(sel.effective_level)
        if sel.effective_level == 3:
            release.wait(10)
        return original(self, sel, progress)

    monkeypatch.setattr(FlipsPane, "compute", held)
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await pilot.press("down")  # level 0 of runs/imp
        pane = app.query_one("#flips-pane")
        await until(pilot, lambda: slot(pane._shown) == ("flips", "runs/imp", 0, "init"))
        await pilot.press("up")  # back to runs/imp, i.e. its last level
        await until(pilot, lambda: slot(pane._wanted) == ("flips", "runs/imp", 3, "init"))
        assert pane.busy
        release.set()
        await settle(pilot)
        assert not pane.busy and slot(pane._shown) == ("flips", "runs/imp", 3, "init")
        assert len(rows(app, "#flips-levels")) == 4
        assert sorted(calls) == [0, 3]


def _held_flips(monkeypatch, level) -> tuple[threading.Event, list[str]]:
    """Hold the Flips computation of ``level`` in a loop that reports progress and never ends
    on its own: only the app can stop it (a minute is a safety net that nothing waits for).
    Returns the event set once it runs, and the list that records how it ended."""
    from signscope.tui.flips import FlipsPane
    from signscope.tui.pane import Abandoned

    original = FlipsPane.compute
    running = threading.Event()
    outcome = []

    def held(self, sel, progress):
        if sel.effective_level == level:
            running.set()
            try:
                for i in range(3000):
                    progress(i, 3000)
                    time.sleep(0.02)
            except Abandoned:
                outcome.append("stopped")
                raise
            outcome.append("finished")
        return original(self, sel, progress)

    monkeypatch.setattr(FlipsPane, "compute", held)
    return running, outcome


@pilot_test
async def test_leaving_a_computation_stops_it(demo, monkeypatch):
    running, outcome = _held_flips(monkeypatch, 3)
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")  # Flips of runs/imp at its last level: the held one
        await until(pilot, running.is_set)
        await pilot.press("down")  # level 0 instead
        pane = app.query_one("#flips-pane")
        await until(pilot, lambda: slot(pane._shown) == ("flips", "runs/imp", 0, "init"))
        await until(pilot, lambda: outcome)
        assert outcome == ["stopped"]


@pilot_test
async def test_quitting_does_not_wait_for_a_computation(demo, monkeypatch):
    running, outcome = _held_flips(monkeypatch, 3)
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await until(pilot, running.is_set)
        await pilot.press("q")
    # The app has exited, and Textual waits for its workers: the computation, which cannot end
    # by itself, must have been stopped rather than waited for.
    assert outcome == ["stopped"]


@pytest.mark.slow
@pilot_test
async def test_mark_two_runs_and_compare(demo):
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await pilot.press("5")
        await settle(pilot)
        assert "Marked: runs/imp" in message(app, "compare")
        await pilot.press(*["down"] * 5)
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        tree = app.query_one("#tree", RunTree)
        assert str(tree.root.children[0].label).startswith("[A] imp")
        assert str(tree.root.children[1].label).startswith("[B] lrr")
        masks = signscope.masks("runs/imp", "runs/lrr").filter(pl.col("layer") == "*")
        signs = signscope.signs("runs/imp", "runs/lrr").filter(pl.col("layer") == "*")
        shown = rows(app, "#compare-table")
        header = [str(c.label) for c in app.query_one("#compare-table", DataTable).columns.values()]
        col = header.index("jaccard")
        assert [float(r[col]) for r in shown] == pytest.approx(masks["jaccard"].to_list(), abs=1e-4)
        col = header.index("agreement")
        assert [float(r[col]) for r in shown] == pytest.approx(
            signs["agreement"].to_list(), abs=1e-4
        )
        # The Layers tab now shows sign agreement with the other marked run.
        await pilot.press("3")
        await settle(pilot)
        per_layer = signscope.signs("runs/lrr", "runs/imp", per_layer=True)
        last = per_layer.filter((pl.col("level") == 3) & (pl.col("layer") != "*")).sort("layer")
        assert [float(r[-1]) for r in rows(app, "#layers-table")] == pytest.approx(
            last["agreement"].to_list(), abs=1e-4
        )
        # c on a marked run unmarks it.
        await pilot.press("c")
        await pilot.press("5")
        await settle(pilot)
        assert "Marked: runs/imp" in message(app, "compare")


@pilot_test
async def test_filter_layers(demo):
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await settle(pilot)
        assert app.query_one("#tabs", TabbedContent).active == "layers"
        assert isinstance(app.focused, Input)
        assert [r[0] for r in rows(app, "#layers-table")] == ["conv1.weight", "fc.weight"]
        await pilot.press("f", "c")
        assert [r[0] for r in rows(app, "#layers-table")] == ["fc.weight"]
        await pilot.press("x")
        assert rows(app, "#layers-table") == []
        await pilot.press("escape")
        await pilot.pause()  # focus moves on the next message loop turn
        assert isinstance(app.focused, RunTree)
        # Typing in the filter never recomputed anything.
        assert app.query_one("#layers-filter", Input).value == "fcx"


@pilot_test
async def test_export_writes_the_current_tabs_figure(demo):
    app = SignscopeApp(["runs"], export_dir="figs", export_format="svg")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # Compare without two marked runs has nothing to export, and says why.
        await pilot.press("5", "e")
        await settle(pilot)
        assert app.exported == [] and not Path("figs").exists()
        assert any("mark two runs" in n.message for n in app._notifications)
        await pilot.press("2", "e")
        await settle(pilot)
        expected = {Path("figs/runs_imp/last-flip.svg"), Path("figs/runs_imp/flip-count.svg")}
        assert set(app.exported) == expected
        for path in expected:
            assert path.read_text().lstrip().startswith("<svg")


@pilot_test
async def test_one_method_label_in_the_tree_the_overview_and_the_exported_figures(
    tmp_path, monkeypatch
):
    """An ``lrr --bn-rewind`` run (config ``method: lrr``, ``bn_rewind: true``; checkpoints
    ``lrr+bn-rewind``) once read ``lrr`` in the tree, in LRR's orange in the Flips tab, but
    ``lrr+bn-rewind`` in green in the Overview chart and the exported figures."""
    import signscope.tui.flips as flips_tab
    import signscope.tui.overview as overview_tab
    from signscope.display import METHOD_COLOURS, rgb
    from signscope.tui.plots import series_colour

    label, green = "lrr+bn-rewind", METHOD_COLOURS["lrr+bn-rewind"]
    random_run(tmp_path / "runs" / "imp", seed=0, n_levels=3, method="imp")
    random_run(tmp_path / "runs" / "lrr-bnr", seed=0, n_levels=3, method=label)
    monkeypatch.chdir(tmp_path)
    drawn = {}

    def spy(module, name):
        original = getattr(module, name)

        def record(*args, **kwargs):
            drawn.setdefault(name, []).append((args, kwargs))
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, record)

    spy(overview_tab, "draw_lines")
    spy(flips_tab, "draw_bars")
    app = SignscopeApp(["runs"], export_dir="figs", export_format="svg")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one("#tree", RunTree)
        node = tree.root.children[1]
        assert str(node.label).split() == ["lrr-bnr", label]
        tree.move_cursor(node)
        await settle(pilot)
        assert app.selection.run.label == "runs/lrr-bnr"
        series = drawn["draw_lines"][-1][0][1]
        names = [name for name, _, _ in series]
        assert sorted(names) == ["imp", label]
        assert series_colour(label, names.index(label)) == rgb(green)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert {kw["colour"] for _, kw in drawn["draw_bars"]} == {rgb(green)}
        await pilot.press("e")
        await settle(pilot)
    folder = Path("figs/runs_lrr-bnr")
    assert set(app.exported) == {
        folder / f"{n}.svg" for n in ("accuracy", "last-flip", "flip-count")
    }
    accuracy = (folder / "accuracy.svg").read_text()
    assert f">{label}<" in accuracy and green in accuracy
    assert green in (folder / "last-flip.svg").read_text()


@pilot_test
async def test_corrupt_run_is_flagged_and_the_app_keeps_working(demo):
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one("#tree", RunTree)
        broken = tree.root.children[2]
        assert "✗ zbroken" in str(broken.label)
        assert "truncated" in str(broken.children[0].label)
        tree.move_cursor(broken)
        await settle(pilot)
        assert app.selection.run.label == "runs/zbroken"
        assert "truncated" in message(app, "overview")
        await pilot.press("2")
        await settle(pilot)
        assert "truncated" in message(app, "flips")
        await pilot.press("up")
        await settle(pilot)
        assert app.selection.run.label == "runs/lrr"


@pilot_test
async def test_run_that_fails_to_open_is_flagged_after_discovery(demo):
    # Discovery reads headers only; a level whose tensors differ from level 0 is caught by
    # open_run when the run is first used, and the tree flags it then.
    rng = np.random.default_rng(0)
    folder = Path("runs/mixed")
    write_safetensors(
        folder / "a.safetensors", {"fc.weight": rng.normal(size=(3, 4)).astype(np.float32)}
    )
    write_safetensors(
        folder / "b.safetensors", {"fc.weight": rng.normal(size=(4, 4)).astype(np.float32)}
    )
    app = SignscopeApp(["runs/mixed"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one("#tree", RunTree)
        assert "✗ runs/mixed" in str(tree.root.children[0].label)
        assert "fc.weight" in message(app, "overview")


@pilot_test
async def test_empty_state_and_reload(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("runs").mkdir()
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.has_class("-empty")
        assert "No runs found below runs" in str(app.query_one("#empty", Static).render())
        random_run(Path("runs/new"), seed=0, n_levels=2)
        await pilot.press("r")
        await settle(pilot)
        assert not app.has_class("-empty")
        assert app.selection.run.label == "runs/new"


@pilot_test
async def test_reload_keeps_the_selection_and_drops_the_cache(demo):
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*["down"] * 7)  # runs/lrr level 1
        await settle(pilot)
        before = app.store.computed
        await pilot.press("r")
        await settle(pilot)
        assert (app.selection.run.label, app.selection.level) == ("runs/lrr", 1)
        assert app.store.computed > before


def _signscope(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signscope", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_cli_rejects_a_missing_path(tmp_path):
    result = _signscope("tui", "nope", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: tui: no such file or folder: nope"


@pytest.mark.slow
def test_cli_rejects_an_unknown_export_format(tmp_path):
    result = _signscope("tui", ".", "--export-format", "gif", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --export-format gif")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tui_in_a_real_terminal(demo):
    """Start `signscope tui` in tmux, read the screen, quit with q."""
    rc_file = demo / "rc"
    # Textual draws on stderr, so it cannot be redirected; the exit status tells failures.
    command = f"{sys.executable} -m signscope tui runs; echo $? > {rc_file}"
    with Terminal(command, cwd=demo) as term:

        def why() -> str:
            status = rc_file.read_text() if rc_file.exists() else "still running"
            return f"screen:\n{text}\nexit status: {status}"

        text = term.wait_for("test accuracy", "zbroken", stop=rc_file.exists)
        assert "runs/imp" in text and "Overview" in text, why()
        assert "test accuracy vs sparsity" in text, why()
        assert "✗ zbroken" in text, why()
        term.send("q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not rc_file.exists():
            time.sleep(0.1)
        assert rc_file.exists() and rc_file.read_text().strip() == "0", why()


@pilot_test
async def test_run_names_are_data_not_markup(tmp_path, monkeypatch):
    """A name that reads as console markup is shown as it is, and
    one that is not UTF-8 is shown with a replacement character."""
    random_run(tmp_path / "runs" / "[bold red]run", n_levels=2)
    random_run(tmp_path / "runs" / os.fsdecode(b"seed\xff1"), n_levels=2)
    monkeypatch.chdir(tmp_path)
    app = SignscopeApp(["runs"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one("#tree", RunTree)
        names = [str(node.label).split()[0] for node in tree.root.children]
        assert names == ["[bold", "seed\ufffd1"]
        assert str(tree.root.children[0].label).startswith("[bold red]run ")
        screen = app.export_screenshot()
        # The Overview's config table shows the run's path, brackets and all.
        assert "runs/[bold&#160;red]run" in screen
