"""BatchNorm tab: gamma statistics per BN layer at the selected level (paper Fig 10, 11),
and the histogram of the layer under the table cursor."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

from signscope.tui.export import FigureRequest
from signscope.tui.frames import fill_table
from signscope.tui.pane import ResultPane
from signscope.tui.plots import draw_bars, series_colour
from signscope.tui.state import Selection

if TYPE_CHECKING:
    import polars as pl

STATS = ["layer", "count", "mean", "std", "min", "median", "max", "frac_zero", "frac_negative"]


class BatchNormPane(ResultPane):
    def compose_content(self) -> ComposeResult:
        with Vertical(classes="content"):
            yield DataTable(id="bn-stats", cursor_type="row", zebra_stripes=True)
            yield PlotextPlot(id="bn-hist")

    def key(self, sel: Selection) -> Hashable | None:
        if sel.run is None or not sel.run.ok or sel.effective_level is None:
            return None
        level = sel.effective_level
        return ("bn", sel.run.label, level, sel.run.inputs(level))

    def compute(self, sel: Selection, progress) -> dict:
        return self.store.run(sel.run).bn(sel.effective_level)

    def show(self, result: dict, sel: Selection) -> None:
        stats: pl.DataFrame = result["bn"]
        if stats.height == 0:
            self.say("This run has no BatchNorm layers.")
            return
        table = self.query_one("#bn-stats", DataTable)
        fill_table(table, stats, STATS)
        self.draw(0)

    def figure_request(self, sel: Selection) -> FigureRequest:
        run = self.healthy_run(sel)
        return FigureRequest(
            f"BatchNorm gamma of {run.label} at level {sel.effective_level}",
            ("bn-gamma",),
            (run,),
            level=sel.effective_level,
        )

    def draw(self, row: int) -> None:
        import polars as pl

        if self.result is None or self.result["bn"].height == 0:
            return
        stats: pl.DataFrame = self.result["bn"]
        layer = stats["layer"][min(row, stats.height - 1)]
        hist = self.result["bn_hist"].filter(pl.col("layer") == layer).sort("bin_low")
        labels = [f"{lo:.2g}" for lo in hist["bin_low"]]
        draw_bars(
            self.query_one("#bn-hist", PlotextPlot),
            labels,
            hist["count"].to_list(),
            f"gamma of {layer} at level {self.selection.effective_level}",
            "gamma (bin start)",
            ylabel="channels",
            colour=series_colour(self.selection.run.method, 0),
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.draw(event.cursor_row)
