"""Layers tab: each prunable layer at the selected level, with its flips and sign agreement.

The numbers come from ``run.layers``, ``run.flips(per_layer=True)`` and
``signscope.signs(per_layer=True)``; the filter (``/``) only hides rows, so typing in it never
recomputes anything.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from signscope.display import literal
from signscope.errors import SignscopeError
from signscope.tui.export import FigureRequest
from signscope.tui.frames import fill_table
from signscope.tui.pane import ResultPane
from signscope.tui.state import Selection

if TYPE_CHECKING:
    import polars as pl

COLUMNS = ["layer", "shape", "numel", "alive", "density", "flips_prev", "flips_init", "agreement"]


class FilterInput(Input):
    BINDINGS = [Binding("escape", "leave", "Back to the tree")]

    def action_leave(self) -> None:
        self.screen.query_one("#tree").focus()


def filter_layers(frame: pl.DataFrame, text: str) -> pl.DataFrame:
    """Rows whose layer name contains every space-separated word of ``text`` (any case)."""
    import polars as pl

    for word in text.lower().split():
        frame = frame.filter(pl.col("layer").str.to_lowercase().str.contains(word, literal=True))
    return frame


class LayersPane(ResultPane):
    _focus_filter = False

    def compose_content(self) -> ComposeResult:
        with Vertical(classes="content"):
            yield FilterInput(
                placeholder="/ filter layers (words in the layer name)", id="layers-filter"
            )
            yield Static("", id="layers-note")
            yield DataTable(id="layers-table", cursor_type="row", zebra_stripes=True)

    def key(self, sel: Selection) -> Hashable | None:
        if sel.run is None or not sel.run.ok or sel.effective_level is None:
            return None
        level = sel.effective_level
        partner = sel.partner if sel.partner and sel.partner.ok else None
        inputs = (sel.run.inputs(level), partner.inputs(level) if partner else None)
        return (
            "layers",
            sel.run.label,
            level,
            partner.label if partner else None,
            sel.reference,
            inputs,
        )

    def compute(self, sel: Selection, progress) -> dict:
        import polars as pl

        import signscope

        level = sel.effective_level
        label = sel.run.label
        run = self.store.run(sel.run)
        layers = run.layers(level).filter(pl.col("prunable"))
        notes = []
        flips = pl.DataFrame(
            schema={"layer": pl.String, "flips_prev": pl.Int64, "flips_init": pl.Int64}
        )
        try:
            # All levels at once: the per-level flip counts come from one pass over the run.
            per_level = self.store.get(
                ("flips-per-layer", label, sel.reference, sel.run.inputs()),
                lambda: run.flips(per_layer=True, reference=sel.reference, progress=progress)[
                    "levels"
                ],
            )
            flips = per_level.filter(pl.col("level") == level).select(flips.columns)
        except SignscopeError as exc:
            notes.append(f"no flips: {exc}")
        table = layers.join(flips, on="layer", how="left")
        note = "Mark another run with c to see sign agreement per layer."
        agreement = pl.DataFrame(schema={"layer": pl.String, "agreement": pl.Float64})
        partner = sel.partner
        if partner is not None and partner.ok:
            try:
                other = self.store.run(partner)
                signs = self.store.get(
                    ("signs-per-layer", label, partner.label, (sel.run.inputs(), partner.inputs())),
                    lambda: signscope.signs(run, other, per_layer=True),
                )
                agreement = signs.filter((pl.col("level") == level) & (pl.col("layer") != "*"))
                agreement = agreement.select("layer", pl.col("agreement").cast(pl.Float64))
                note = (
                    f"agreement: fraction of weights alive in both with the sign of {partner.label}"
                )
                if agreement.height == 0:
                    note = f"{partner.label} has no level {level}: no sign agreement"
            except SignscopeError as exc:
                note = f"no sign agreement with {partner.label}: {exc}"
        table = table.join(agreement, on="layer", how="left")
        return {"table": table.select(COLUMNS), "note": " · ".join([*notes, note])}

    def show(self, result: dict, sel: Selection) -> None:

        self.query_one("#layers-note", Static).update(
            f"level {sel.effective_level} of {literal(sel.run.label)} · {literal(result['note'])}"
        )
        self._fill()
        if self._focus_filter:
            self.call_after_refresh(self._take_focus)

    def _fill(self) -> None:
        if self.result is None:
            return
        text = self.query_one("#layers-filter", FilterInput).value
        fill_table(
            self.query_one("#layers-table", DataTable), filter_layers(self.result["table"], text)
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#layers-table", DataTable).focus()

    def figure_request(self, sel: Selection) -> FigureRequest:
        run = self.healthy_run(sel)
        partner = sel.partner
        if partner is None or not partner.ok:
            raise SignscopeError(
                "the Layers tab exports mask overlap and sign agreement with a "
                "compared run: mark another run with c first"
            )
        return FigureRequest(
            f"{run.label} vs {partner.label} per layer",
            ("mask-overlap", "sign-agreement"),
            (run, partner),
            pair=(run.label, partner.label),
        )

    def focus_filter(self) -> None:
        """Focus the filter now, or as soon as the table is shown (a loading pane refuses focus)."""
        self._focus_filter = True
        if not self.busy and self._shown is not None:
            self._take_focus()

    def _take_focus(self) -> None:
        self._focus_filter = False
        self.query_one("#layers-filter", FilterInput).focus()
