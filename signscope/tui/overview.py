"""Overview tab: the run's config and levels, and accuracy against sparsity.

The chart is the paper's main comparison (Fig 3, 4, 15, 17): test accuracy of each method
against sparsity, mean over seeds (``signscope.acc``). Runs shown together are the selected
run and every discovered run with the same dataset and model.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

from signscope.discover import FoundRun
from signscope.display import config_items
from signscope.errors import SignscopeError
from signscope.tui.export import FigureRequest
from signscope.tui.frames import fill_rows, fill_table
from signscope.tui.pane import ResultPane
from signscope.tui.plots import draw_lines, sparsity_label
from signscope.tui.state import Selection

if TYPE_CHECKING:
    import polars as pl


def companions(run: FoundRun, runs: tuple[FoundRun, ...]) -> tuple[FoundRun, ...]:
    """``run`` and the healthy signscope runs trained on the same dataset and model."""
    if run.kind != "signscope":
        return (run,)

    def setup(r: FoundRun) -> tuple:
        return (r.config.get("dataset"), r.config.get("model"))

    same = [
        r
        for r in runs
        if r.ok and r.kind == "signscope" and r.path != run.path and setup(r) == setup(run)
    ]
    return (run, *same)


def config_rows(run: FoundRun) -> list[tuple[str, str]]:
    """Key/value rows: what the run is, then its config as ``signscope show`` prints it.

    Plain rows, no polars: this is the first screen, and importing polars takes longer than
    drawing it."""
    rows = [("path", run.label), ("kind", run.kind), ("levels found", str(len(run.levels)))]
    if "method" not in run.config:
        rows.append(("method", run.method or "—"))
    return rows + config_items(run.config)


class OverviewPane(ResultPane):
    def compose_content(self) -> ComposeResult:
        with Vertical(classes="content"):
            with Horizontal(id="overview-tables"):
                yield DataTable(id="overview-config", cursor_type="row", zebra_stripes=True)
                yield DataTable(id="overview-levels", cursor_type="row", zebra_stripes=True)
            yield PlotextPlot(id="overview-plot")

    def busy_widgets(self) -> tuple[Widget, ...]:
        # The config is the manifest and shows at once; levels and chart need the masks
        # (alive counts per level), so only they wait for the worker.
        return (self.query_one("#overview-levels"), self.query_one("#overview-plot"))

    def prepare(self, sel: Selection) -> None:
        fill_rows(
            self.query_one("#overview-config", DataTable), ("key", "value"), config_rows(sel.run)
        )

    def key(self, sel: Selection) -> Hashable | None:
        if sel.run is None or not sel.run.ok:
            return None
        return ("overview", tuple(r.label for r in companions(sel.run, sel.runs)))

    def compute(self, sel: Selection, progress) -> dict:
        import signscope

        run = self.store.run(sel.run.label)
        members = [run]
        for other in companions(sel.run, sel.runs)[1:]:
            try:
                members.append(self.store.run(other.label))
            except SignscopeError:
                continue  # a broken companion must not hide the selected run's own curve
        return {"summary": run.summary(), "accuracy": signscope.acc(members)["accuracy"]}

    def show(self, result: dict, sel: Selection) -> None:
        summary = result["summary"].drop("run")
        fill_table(self.query_one("#overview-levels", DataTable), summary)
        self._draw(result)
        self.follow(sel)

    def follow(self, sel: Selection) -> None:
        # Only the level cursor depends on the level; config and chart belong to the run.
        level = sel.effective_level
        table = self.query_one("#overview-levels", DataTable)
        if level is not None and level < table.row_count:
            table.move_cursor(row=level)

    def figure_request(self, sel: Selection) -> FigureRequest:
        run = self.healthy_run(sel)
        return FigureRequest(
            f"accuracy of {run.label}",
            ("accuracy",),
            tuple(r.label for r in companions(run, sel.runs)),
        )

    def _draw(self, result: dict) -> None:
        import polars as pl

        acc: pl.DataFrame = result["accuracy"].filter(pl.col("mean").is_not_null())
        plot = self.query_one("#overview-plot", PlotextPlot)
        series, ticks = [], {}
        for (method,), part in acc.sort("level").group_by(["method"], maintain_order=True):
            series.append((str(method), part["level"].to_list(), part["mean"].to_list()))
            for level, density in part.select("level", "density").iter_rows():
                ticks.setdefault(level, sparsity_label(density))
        seeds = int(acc["replicates"].max()) if acc.height else 0
        title = (
            "test accuracy vs sparsity" + (f" (mean of {seeds} seeds)" if seeds > 1 else "")
            if series
            else "no test accuracy recorded for this run"
        )
        draw_lines(plot, series, sorted(ticks.items()), title, ylabel="test acc")
