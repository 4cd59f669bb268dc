"""Flips tab: sign flips per level, and when and how often the surviving weights flipped.

Paper Fig 5: ``last_flip`` (top: "the pruning iteration at which the signs do not change
anymore") and ``flip_count`` (bottom), over the weights alive at the selected level; the
table's ``flips_init`` is what Fig 13 compares between LRR and IMP.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

from signscope.tui.export import FigureRequest
from signscope.tui.frames import fill_table
from signscope.tui.pane import ResultPane
from signscope.tui.plots import compact, draw_bars, series_colour
from signscope.tui.state import Selection

if TYPE_CHECKING:
    import polars as pl


def _label_never(value: int) -> str:
    return "never" if value == -1 else str(value)


class FlipsPane(ResultPane):
    def compose_content(self) -> ComposeResult:
        with Vertical(classes="content"):
            yield DataTable(id="flips-levels", cursor_type="row", zebra_stripes=True)
            with Horizontal(id="flips-plots"):
                yield PlotextPlot(id="flips-last")
                yield PlotextPlot(id="flips-count")

    def key(self, sel: Selection) -> Hashable | None:
        if sel.run is None or not sel.run.ok or sel.effective_level is None:
            return None
        level = sel.effective_level
        return ("flips", sel.run.label, level, sel.reference, sel.run.inputs(level))

    def compute(self, sel: Selection, progress) -> dict:
        return self.store.run(sel.run).flips(
            at_level=sel.effective_level, reference=sel.reference, progress=progress
        )

    def show(self, result: dict, sel: Selection) -> None:
        level = sel.effective_level
        fill_table(self.query_one("#flips-levels", DataTable), result["levels"].drop("run"))
        self.follow(sel)
        colour = series_colour(sel.run.method, 0)  # the run's method colour, as in the figures
        last: pl.DataFrame = result["last_flip"].sort("last_flip")
        alive = int(last["count"].sum()) if last.height else 0
        draw_bars(
            self.query_one("#flips-last", PlotextPlot),
            [_label_never(v) for v in last["last_flip"]],
            last["count"].to_list(),
            f"last flip, {compact(alive)} alive at L{level}",
            "level",
            colour=colour,
        )
        count: pl.DataFrame = result["flip_count"].sort("flip_count")
        draw_bars(
            self.query_one("#flips-count", PlotextPlot),
            count["flip_count"].to_list(),
            count["count"].to_list(),
            f"flip count from {sel.reference}",
            "flips per weight",
            colour=colour,
        )

    def figure_request(self, sel: Selection) -> FigureRequest:
        run = self.healthy_run(sel)
        return FigureRequest(
            f"sign flips of {run.label} at level {sel.effective_level}",
            ("last-flip", "flip-count"),
            (run,),
            level=sel.effective_level,
            reference=sel.reference,
        )

    def follow(self, sel: Selection) -> None:
        table = self.query_one("#flips-levels", DataTable)
        level = sel.effective_level
        if level is not None and level < table.row_count:
            table.move_cursor(row=level)
