"""Put a polars frame into a Textual DataTable, formatted like the CLI's tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from rich.text import Text
from textual.widgets import DataTable

# The CLI's cell formatting, so a number reads the same in `signscope flips` and in the TUI.
from signscope.cli.render import _fmt_cell as format_cell


def fill_table(
    table: DataTable,
    frame: pl.DataFrame,
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Replace ``table``'s columns and rows with ``frame`` (numbers right-aligned)."""
    columns = list(columns or frame.columns)
    headers = dict(headers or {})
    numeric = {c for c, t in frame.schema.items() if t.is_numeric()}
    table.clear(columns=True)
    for col in columns:
        label = headers.get(col, col)
        table.add_column(Text(label, justify="right") if col in numeric else label, key=col)
    rows = []
    for row in frame.select(columns).iter_rows():
        rows.append([
            Text(format_cell(v), justify="right") if c in numeric else format_cell(v)
            for c, v in zip(columns, row, strict=True)
        ])
    table.add_rows(rows)
