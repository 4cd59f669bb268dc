"""Overview tab: the run's config and levels, accuracy against sparsity, and its training.

The first chart is the paper's main comparison (Fig 3, 4, 15, 17): test accuracy of each
method against sparsity, mean over seeds (``signscope.acc``). Runs shown together are the
selected run and every discovered run with the same dataset and model. The second chart and
the line above them follow the run's ``metrics.jsonl``: loss and accuracy per epoch of every
level so far, and, while it trains, where it is, when its last epoch ended and the ETA.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from signscope.discover import FoundRun
from signscope.display import config_items, sparsity_text
from signscope.errors import SignscopeError
from signscope.training import Epoch, Training, duration_text, read_epochs
from signscope.tui.export import FigureRequest
from signscope.tui.frames import fill_rows, fill_table
from signscope.tui.pane import ResultPane
from signscope.tui.plots import draw_epochs, draw_lines
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
        if r.ok
        and r.levels
        and r.kind == "signscope"
        and r.path != run.path
        and setup(r) == setup(run)
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


def status_text(training: Training, now: float) -> str:
    """The line above the charts: where training stands (markup)."""
    history = training.history or ()
    if training.complete:
        spent = sum(e.seconds or 0.0 for e in history)
        return f"[b]complete[/b] · {training.levels_done} levels · {len(history)} epochs" + (
            f" · {duration_text(spent)} of training" if spent else ""
        )
    level, epoch = training.position()
    parts = [
        f"level {level}" + (f"/{training.levels_total}" if training.levels_total else ""),
        f"epoch {epoch}" + (f"/{training.epochs_per_level}" if training.epochs_per_level else ""),
    ]
    age = training.since_update(now)
    if age is not None:
        parts.append(f"last epoch {duration_text(age)} ago" if history else "no epoch yet")
    if training.state(now) == "stalled":
        return "[b yellow]⚠ stalled[/] · " + " · ".join(parts)
    eta, per_epoch = training.eta(now), training.epoch_seconds()
    if eta is not None:
        parts.append(f"ETA {duration_text(eta)}")
    if per_epoch is not None:
        parts.append(f"{duration_text(per_epoch)}/epoch")
    return "[b green]● training[/] · " + " · ".join(parts)


class OverviewPane(ResultPane):
    _epochs_drawn: tuple[Epoch, ...] | None = None

    def compose_content(self) -> ComposeResult:
        with Vertical(classes="content"):
            with Horizontal(id="overview-tables"):
                yield DataTable(id="overview-config", cursor_type="row", zebra_stripes=True)
                yield DataTable(id="overview-levels", cursor_type="row", zebra_stripes=True)
            yield Static("", id="overview-status")
            with Horizontal(id="overview-charts"):
                yield PlotextPlot(id="overview-plot")
                yield PlotextPlot(id="overview-epochs")

    def busy_widgets(self) -> tuple[Widget, ...]:
        # The config is the manifest and shows at once; levels and chart need the masks
        # (alive counts per level), so only they wait for the worker.
        return (self.query_one("#overview-levels"), self.query_one("#overview-plot"))

    def prepare(self, sel: Selection) -> None:
        fill_rows(
            self.query_one("#overview-config", DataTable), ("key", "value"), config_rows(sel.run)
        )
        self._show_training(sel.run.training)

    def key(self, sel: Selection) -> Hashable | None:
        if sel.run is None or not sel.run.ok:
            return None
        runs = companions(sel.run, sel.runs)
        return ("overview", tuple(r.label for r in runs), tuple(r.inputs() for r in runs))

    def compute(self, sel: Selection, progress) -> dict:
        import signscope

        training = sel.run.training
        # A finished run's log is not followed by discovery: read it the first time it shows.
        history = read_epochs(sel.run.path) if training and training.history is None else None
        done = {"run": sel.run.label, "history": history}
        if not sel.run.levels:  # level 0 is still training
            return {**done, "summary": None, "accuracy": None}
        run = self.store.run(sel.run)
        members = [run]
        for other in companions(sel.run, sel.runs)[1:]:
            try:
                members.append(self.store.run(other))
            except SignscopeError:
                continue  # a broken companion must not hide the selected run's own curve
        return {**done, "summary": run.summary(), "accuracy": signscope.acc(members)["accuracy"]}

    def show(self, result: dict, sel: Selection) -> None:
        table = self.query_one("#overview-levels", DataTable)
        if result["summary"] is None:
            table.clear(columns=True)
        else:
            fill_table(table, result["summary"].drop("run"))
        self._draw(result)
        self.follow(sel)

    def follow(self, sel: Selection) -> None:
        # The level cursor depends on the level, the training part on the last poll; config
        # and accuracy chart belong to the run's level files.
        level = sel.effective_level
        table = self.query_one("#overview-levels", DataTable)
        if level is not None and level < table.row_count:
            table.move_cursor(row=level)
        self._show_training(self._training(sel))

    def clock(self) -> None:
        self._show_training(self._training(self.selection), redraw=False)

    def _training(self, sel: Selection) -> Training | None:
        """The run's training, with the history the worker read when discovery has none."""
        training = sel.run.training if sel.run is not None else None
        result = self.result
        same_run = result is not None and sel.run is not None and result["run"] == sel.run.label
        read = result["history"] if same_run else None
        if training is not None and training.history is None and read is not None:
            return dataclasses.replace(training, history=read)
        return training

    def _show_training(self, training: Training | None, redraw: bool = True) -> None:
        history = training.history if training is not None else None
        self.set_class(bool(history) or bool(training and training.active), "-training")
        if training is None:
            return
        self.query_one("#overview-status", Static).update(status_text(training, time.time()))
        if redraw and history is not None and history is not self._epochs_drawn:
            self._epochs_drawn = history
            level, _ = training.position()
            draw_epochs(
                self.query_one("#overview-epochs", PlotextPlot),
                history,
                f"per epoch, levels 0-{level}" if level else "per epoch, level 0",
            )

    def figure_request(self, sel: Selection) -> FigureRequest:
        run = self.healthy_run(sel)
        if not run.levels:
            raise SignscopeError(f"{run.label} has no level yet: nothing to plot")
        return FigureRequest(f"accuracy of {run.label}", ("accuracy",), companions(run, sel.runs))

    def _draw(self, result: dict) -> None:
        import polars as pl

        plot = self.query_one("#overview-plot", PlotextPlot)
        if result["accuracy"] is None:
            draw_lines(plot, [], [], "no level finished yet", ylabel="test acc")
            return
        acc: pl.DataFrame = result["accuracy"].filter(pl.col("mean").is_not_null())
        series, ticks = [], {}
        for (method,), part in acc.sort("level").group_by(["method"], maintain_order=True):
            series.append((str(method), part["level"].to_list(), part["mean"].to_list()))
            for level, density in part.select("level", "density").iter_rows():
                ticks.setdefault(level, sparsity_text(density))
        seeds = int(acc["replicates"].max()) if acc.height else 0
        title = (
            "test accuracy vs sparsity" + (f" (mean of {seeds} seeds)" if seeds > 1 else "")
            if series
            else "no test accuracy recorded for this run"
        )
        draw_lines(plot, series, sorted(ticks.items()), title, ylabel="test acc")
