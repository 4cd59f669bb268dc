"""The terminal UI on a folder of Trainer checkpoints, with the base model as reference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SIZE, pilot_test, rows, settle
from runfactory import write_safetensors, write_trainer_checkpoint
from textual.widgets import Tree

import signscope
from signscope.tui.app import SignscopeApp


@pytest.mark.slow  # every tab over three checkpoint-folder runs
@pilot_test
async def test_checkpoint_folders_with_a_base_model_reference(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    base = {"model.proj.weight": rng.normal(size=(6, 5)).astype(np.float32)}
    write_safetensors(tmp_path / "base" / "model.safetensors", base, bf16=True)
    weights = dict(base)
    for step in (10, 20, 100):
        weights = {n: a + rng.normal(size=a.shape).astype(np.float32) for n, a in weights.items()}
        write_trainer_checkpoint(tmp_path / "output" / f"checkpoint-{step}", weights)
    monkeypatch.chdir(tmp_path)
    app = SignscopeApp(["output"], reference="base", export_dir="figs", export_format="svg")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.query_one(Tree)
        run_node = tree.root.children[0]
        labels = [str(child.label) for child in run_node.children]
        assert [label.split()[-1] for label in labels] == [
            "checkpoint-10",
            "checkpoint-20",
            "checkpoint-100",
        ]
        await pilot.press("2")
        await settle(pilot)
        want = signscope.open_run("output").flips(reference="base")["levels"]
        assert [r[-1] for r in rows(app, "#flips-levels")] == [str(v) for v in want["flips_init"]]
        assert app.selection.reference == "base"
        for expected in ("init", "rewind", "base"):
            await pilot.press("f")
            await settle(pilot)
            assert app.selection.reference == expected
        # The exported flip figures count from the same reference (runs of checkpoints have
        # no init to fall back on).
        await pilot.press("e")
        await settle(pilot)
        names = {p.name for p in app.exported}
        assert names == {"last-flip.svg", "flip-count.svg"}
