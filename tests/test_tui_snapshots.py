"""SVG snapshots of every tab of `signscope tui` on small deterministic runs.

Update them after an intended change with
``.venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the
SVGs in ``tests/__snapshots__/test_tui_snapshots/`` before committing them.
"""

from __future__ import annotations

import pytest
from conftest import SIZE, settle
from textual.widgets import Input

from signscope.tui.app import SignscopeApp

# Each renders the whole app through its tabs and compares SVGs: seconds apiece.
pytestmark = pytest.mark.slow


def _keys(*keys: str):
    async def run_before(pilot) -> None:
        for input_widget in pilot.app.query(Input):
            input_widget.cursor_blink = False  # a blinking cursor would make snapshots flaky
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.pause()

    return run_before


def test_overview(demo, snap_compare):
    assert snap_compare(SignscopeApp(["runs"]), terminal_size=SIZE, run_before=_keys())


def test_flips_at_a_level(demo, snap_compare):
    # runs/imp level 2, then the Flips tab.
    keys = ("down", "down", "down", "2")
    assert snap_compare(SignscopeApp(["runs"]), terminal_size=SIZE, run_before=_keys(*keys))


def test_layers_with_a_compared_run(demo, snap_compare):
    # Mark runs/lrr, go back to runs/imp: its layers show sign agreement with runs/lrr.
    keys = (*["down"] * 5, "c", *["up"] * 5, "3")
    assert snap_compare(SignscopeApp(["runs"]), terminal_size=SIZE, run_before=_keys(*keys))


def test_batchnorm(demo, snap_compare):
    assert snap_compare(SignscopeApp(["runs"]), terminal_size=SIZE, run_before=_keys("4"))


def test_compare_two_marked_runs(demo, snap_compare):
    keys = ("c", *["down"] * 5, "c", "5")
    assert snap_compare(SignscopeApp(["runs"]), terminal_size=SIZE, run_before=_keys(*keys))


def test_broken_run(demo, snap_compare):
    keys = ["down"] * 10  # past runs/imp and runs/lrr with their levels
    assert snap_compare(SignscopeApp(["runs"]), terminal_size=SIZE, run_before=_keys(*keys))


def test_empty_state(demo, snap_compare):
    (demo / "nothing").mkdir()
    assert snap_compare(SignscopeApp(["nothing"]), terminal_size=SIZE, run_before=_keys())
