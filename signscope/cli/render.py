"""Render named polars tables as a rich table, JSON, CSV or Parquet (SPEC section 4).

Every inspection command returns ``dict[str, polars.DataFrame]`` and hands it to
:func:`emit`; the table names become JSON keys and CSV/Parquet file names.
"""

from __future__ import annotations

import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from signscope.display import format_cell, printable
from signscope.errors import UsageError
from signscope.runformat import atomic_write_bytes, atomic_write_text


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    parquet = "parquet"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="table (for people), json, csv or parquet (for scripts)."),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Folder for the output files (one file per table for csv/parquet). "
        "json and table print to stdout when it is not given.",
    ),
]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def tables_to_json(tables: dict[str, pl.DataFrame]) -> str:
    """One object whose keys are table names and whose values are lists of row objects."""
    obj = {name: [_clean(row) for row in df.to_dicts()] for name, df in tables.items()}
    return json.dumps(obj, indent=2, allow_nan=False, default=str)


def rich_tables(tables: dict[str, pl.DataFrame]):
    """Yield one ``rich.table.Table`` per frame (used by the CLI and the TUI alike)."""
    from rich.table import Table
    from rich.text import Text

    for name, df in tables.items():
        table = Table(title=name, title_justify="left", title_style="bold")
        numeric = {c for c, t in df.schema.items() if t.is_numeric()}
        for col in df.columns:
            table.add_column(col, justify="right" if col in numeric else "left")
        for row in df.iter_rows():
            # Text, not str: a cell is data (a run named "imp[seed1]"), never console markup.
            table.add_row(*(Text(format_cell(v)) for v in row))
        yield table


def emit(
    tables: dict[str, pl.DataFrame],
    fmt: OutputFormat | str = OutputFormat.table,
    out: Path | None = None,
    stem: str = "result",
) -> list[Path]:
    """Write ``tables`` in ``fmt``; return the files written (empty when printed)."""
    fmt = OutputFormat(fmt)
    written: list[Path] = []
    if fmt in (OutputFormat.csv, OutputFormat.parquet) and out is None:
        raise UsageError(f"--format {fmt.value} writes one file per table: give --out DIR")
    if out is not None:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
    if fmt is OutputFormat.json:
        text = tables_to_json(tables)
        if out is None:
            sys.stdout.write(text + "\n")
        else:
            path = out / f"{stem}.json"
            atomic_write_text(path, text + "\n")
            written.append(path)
    elif fmt is OutputFormat.csv:
        for name, df in tables.items():
            path = out / f"{name}.csv"
            atomic_write_text(path, df.write_csv())
            written.append(path)
    elif fmt is OutputFormat.parquet:
        import io

        for name, df in tables.items():
            buf = io.BytesIO()
            df.write_parquet(buf)
            path = out / f"{name}.parquet"
            atomic_write_bytes(path, buf.getvalue())
            written.append(path)
    else:
        from rich.console import Console

        if out is None:
            # Piped output has no terminal width to respect; a wide console keeps
            # column names whole instead of folding them at 80 characters.
            console = Console() if sys.stdout.isatty() else Console(width=240)
            for table in rich_tables(tables):
                console.print(table)
        else:
            import io

            console = Console(record=True, width=200, file=io.StringIO())
            for table in rich_tables(tables):
                console.print(table)
            path = out / f"{stem}.txt"
            atomic_write_text(path, console.export_text())
            written.append(path)
    if written:
        print("wrote " + printable(", ".join(str(p) for p in written)), file=sys.stderr)
    return written
