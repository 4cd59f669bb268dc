"""The TUI's pure parts: selection and marks, the result store, names, filters, axis ticks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import polars as pl
import pytest

from signscope.discover import FoundRun, LevelInfo
from signscope.display import METHOD_COLOURS, method_colour, rgb, sparsity_text
from signscope.errors import SignscopeError
from signscope.tui.export import folder_name
from signscope.tui.layers import filter_layers
from signscope.tui.plots import compact, count_ticks, series_colour
from signscope.tui.runtree import short_names
from signscope.tui.state import Selection, toggle_mark
from signscope.tui.store import RunOpenError, Store


def _run(label: str, levels: int = 3) -> FoundRun:
    return FoundRun(
        label=label,
        path=Path(label),
        kind="signscope",
        levels=tuple(LevelInfo(i, f"level_{i:03d}.safetensors") for i in range(levels)),
    )


def test_marks_keep_the_last_two_and_toggle():
    a, b, c = _run("a"), _run("b"), _run("c")
    marks = toggle_mark((), a)
    marks = toggle_mark(marks, b)
    assert [r.label for r in marks] == ["a", "b"]
    assert [r.label for r in toggle_mark(marks, c)] == ["b", "c"]
    assert [r.label for r in toggle_mark(marks, a)] == ["b"]


def test_selection_level_pair_and_partner():
    a, b = _run("a", 4), _run("b")
    assert Selection(run=a).effective_level == 3
    assert Selection(run=a, level=1).effective_level == 1
    assert Selection(run=_run("empty", 0)).effective_level is None
    assert Selection(run=a, marked=(a,)).pair is None
    assert Selection(run=a, marked=(a, b)).pair == (a, b)
    # The partner is the other marked run, or the first marked one.
    assert Selection(run=a, marked=(a, b)).partner is b
    assert Selection(run=b, marked=(a, b)).partner is a
    assert Selection(run=_run("c"), marked=(a, b)).partner is a
    assert Selection(run=a, marked=(a,)).partner is None


def test_store_computes_each_key_once_even_from_two_threads():
    store = Store()
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)
        return "value"

    threads = [threading.Thread(target=store.get, args=("k", slow)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and store.computed == 1 and store.peek("k") == "value"


def test_store_does_not_cache_failures_or_results_from_before_a_clear():
    store = Store()
    with pytest.raises(ValueError):
        store.get("k", lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert store.get("k", lambda: 1) == 1

    def cleared_meanwhile():
        store.clear()
        return "stale"

    assert store.get("x", cleared_meanwhile) == "stale"
    assert store.peek("x") is None


def test_store_keeps_one_value_per_key_without_its_file_stamps():
    # The last element of a key is the stamps of the files the value came from: a value
    # computed from newer files replaces the older one, which can never be asked for again.
    store = Store()
    store.get(("flips", "runs/a", 0, ("stamps", 1)), lambda: "old")
    store.get(("flips", "runs/a", 1, ("stamps", 1)), lambda: "level 1")
    store.get(("flips", "runs/a", 0, ("stamps", 2)), lambda: "new")
    assert store.peek(("flips", "runs/a", 0, ("stamps", 1))) is None
    assert store.peek(("flips", "runs/a", 0, ("stamps", 2))) == "new"
    assert store.peek(("flips", "runs/a", 1, ("stamps", 1))) == "level 1"


def test_store_run_wraps_open_errors_with_the_label(tmp_path):
    with pytest.raises(RunOpenError) as info:
        Store().run(_run(str(tmp_path / "nothing")))
    assert info.value.label == str(tmp_path / "nothing")
    assert isinstance(info.value, SignscopeError)


def test_tree_names_are_short_unless_ambiguous():
    labels = ["runs/imp", "runs/lrr", "/abs/ckpts", "other/lrr", "runs/a/b"]
    assert short_names(labels, ["runs", "/abs/ckpts", "other"]) == {
        "runs/imp": "imp",
        "runs/lrr": "runs/lrr",
        "/abs/ckpts": "/abs/ckpts",
        "other/lrr": "other/lrr",
        "runs/a/b": "a/b",
    }
    assert short_names(["runs/imp"], ["."]) == {"runs/imp": "runs/imp"}


def test_layer_filter_matches_every_word_in_any_case():
    frame = pl.DataFrame(
        {
            "layer": [
                "layer1.0.conv1.weight",
                "layer1.0.conv2.weight",
                "layer2.0.conv1.weight",
                "fc.weight",
            ]
        }
    )
    assert filter_layers(frame, "")["layer"].to_list() == frame["layer"].to_list()
    assert filter_layers(frame, "CONV1")["layer"].to_list() == [
        "layer1.0.conv1.weight",
        "layer2.0.conv1.weight",
    ]
    assert filter_layers(frame, "layer2 conv1")["layer"].to_list() == ["layer2.0.conv1.weight"]
    assert filter_layers(frame, "conv1.w[")["layer"].to_list() == []  # literal, not a regex


def test_export_folder_names_are_safe():
    assert folder_name("runs/lrr") == "runs_lrr"
    assert folder_name("/abs/runs/imp", "../x y") == "abs_runs_imp-vs-x_y"


def test_axis_ticks_are_round_and_compact():
    assert count_ticks(754348) == [0, 200000, 400000, 600000, 800000]
    assert count_ticks(113) == [0, 50, 100, 150]
    assert count_ticks(0) == [0.0]
    assert [compact(v) for v in (0, 950, 200000, 1.5e6)] == ["0", "950", "200k", "1.5M"]


def test_method_colours_and_sparsity_text_are_the_figures():
    # The TUI once kept its own copy of the colours, without the -rand variants.
    for method in METHOD_COLOURS:
        assert series_colour(method, 4) == rgb(method_colour(method))
    assert series_colour("lrr-synflow", 1) == "cyan"  # not a known method: a terminal colour
    assert [sparsity_text(d) for d in (None, 1.0, 0.8**3, 1e-4)] == ["?", "0%", "48.8%", "99.99%"]


def test_a_tab_without_its_hooks_is_refused_when_defined():
    import pytest

    from signscope.tui.pane import ResultPane

    with pytest.raises(TypeError, match="must define compose_content, compute, show"):

        class Incomplete(ResultPane):  # noqa: F841
            def key(self, sel):
                return None
