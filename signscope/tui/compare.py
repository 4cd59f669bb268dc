"""Compare tab: mask overlap and sign agreement of the two runs marked with ``c``, per level.

Overlap is the Jaccard index of the two masks next to ``jaccard_chance``, what two independent
random masks with the same per-layer densities would reach (SPEC section 3; the paper's claim
that LRR and IMP find different masks, Sec. 3); agreement is the fraction of weights alive in
both runs that carry the same sign.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from signscope.display import literal, sparsity_text
from signscope.errors import SignscopeError
from signscope.tui.export import FigureRequest
from signscope.tui.frames import fill_table
from signscope.tui.pane import ResultPane
from signscope.tui.plots import draw_lines
from signscope.tui.state import Selection

if TYPE_CHECKING:
    import polars as pl

COLUMNS = ["level", "intersection", "union", "jaccard", "jaccard_chance", "both_alive", "agreement"]


class ComparePane(ResultPane):
    def compose_content(self) -> ComposeResult:
        with Vertical(classes="content"):
            yield Static("", id="compare-title")
            yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
            yield PlotextPlot(id="compare-plot")

    def key(self, sel: Selection) -> Hashable | None:
        pair = sel.pair
        if pair is None or not all(r.ok for r in pair):
            return None
        a, b = pair
        return ("compare", a.label, b.label, (a.inputs(), b.inputs()))

    def idle_message(self, sel: Selection) -> str:
        pair = sel.pair
        if pair is not None:
            bad = next(r for r in pair if not r.ok)
            return f"Cannot compare: {literal(bad.label)} is broken ({literal(bad.error or '')})"
        marked = ", ".join(literal(r.label) for r in sel.marked) or "none yet"
        return (
            "Mark two runs with [b]c[/b] (select a run in the tree, press c, then the other)."
            f"\n\nMarked: {marked}"
        )

    def compute(self, sel: Selection, progress) -> dict:
        import polars as pl

        import signscope

        a, b = (self.store.run(r) for r in sel.pair)
        masks = signscope.masks(a, b).filter(pl.col("layer") == "*")
        signs = signscope.signs(a, b).filter(pl.col("layer") == "*")
        table = masks.join(signs.select("level", "both_alive", "agreement"), on="level", how="left")
        return {"table": table.sort("level").select(COLUMNS)}

    def figure_request(self, sel: Selection) -> FigureRequest:
        pair = sel.pair
        if pair is None:
            raise SignscopeError("mark two runs with c to export their comparison")
        a, b = pair
        for run in pair:
            self.healthy_run(Selection(run=run))
        return FigureRequest(
            f"{a.label} vs {b.label}",
            ("mask-overlap", "sign-agreement", "flips-init-diff"),
            (a, b),
            pair=(a.label, b.label),
            reference=sel.reference,
        )

    def show(self, result: dict, sel: Selection) -> None:
        a, b = sel.pair
        self.query_one("#compare-title", Static).update(
            f"[b]A[/b] {literal(a.label)}  vs  [b]B[/b] {literal(b.label)}: "
            "masks and signs per level"
        )
        table: pl.DataFrame = result["table"]
        fill_table(self.query_one("#compare-table", DataTable), table)
        density = {info.level: info.density for info in a.levels}
        levels = table["level"].to_list()
        draw_lines(
            self.query_one("#compare-plot", PlotextPlot),
            # Chance first, so the measured overlap is drawn over it where they coincide.
            [
                ("jaccard chance", levels, table["jaccard_chance"].to_list()),
                ("jaccard", levels, table["jaccard"].to_list()),
                ("sign agreement", levels, table["agreement"].to_list()),
            ],
            [(lvl, sparsity_text(density.get(lvl))) for lvl in levels],
            "mask overlap and sign agreement",
            ylabel="fraction",
            colours=["gray", "cyan", "magenta"],
        )
