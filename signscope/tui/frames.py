"""Put a polars frame (or plain rows) into a Textual DataTable, formatted like the CLI's tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable

# The CLI's cell formatting, so a number reads the same in `signscope flips` and in the TUI.
from signscope.display import format_cell

if TYPE_CHECKING:
    import polars as pl


def fill_table(
    table: DataTable,
    frame: pl.DataFrame,
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Replace ``table``'s columns and rows with ``frame`` (numbers right-aligned)."""
    columns = list(columns or frame.columns)
    numeric = {c for c, t in frame.schema.items() if t.is_numeric()}
    fill_rows(table, columns, frame.select(columns).iter_rows(), numeric, headers)


def fill_rows(
    table: DataTable,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    numeric: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
) -> None:
    """Replace ``table``'s columns and rows with plain ``rows`` (no polars needed)."""
    headers = dict(headers or {})
    numeric = set(numeric)
    table.clear(columns=True)
    # Text, not str: DataTable reads strings as markup, and cells hold data such as run names.
    for col in columns:
        label = headers.get(col, col)
        table.add_column(Text(label, justify="right") if col in numeric else Text(label), key=col)
    table.add_rows(
        [
            [
                Text(format_cell(v), justify="right") if c in numeric else Text(format_cell(v))
                for c, v in zip(columns, row, strict=True)
            ]
            for row in rows
        ]
    )
