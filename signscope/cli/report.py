"""``signscope report RUN... --out report.html``: one self-contained, offline HTML report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from signscope.cli.app import app
from signscope.cli.export import (
    FigureOption,
    LevelOption,
    PairOption,
    RunsArg,
    chosen,
    open_inputs,
    report_skipped,
)
from signscope.cli.inspect_options import ReferenceOption


@app.command("report")
def report_command(
    runs: RunsArg = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="The HTML file to write (replaced if it exists).",
            show_default=False,
        ),
    ] = ...,
    figure: FigureOption = None,
    pair: PairOption = None,
    level: LevelOption = None,
    reference: ReferenceOption = "init",
) -> None:
    """Write every figure, the runs' configs and the key tables into one HTML file.

    The Vega libraries are inlined: the file opens without a network.
    Figures the runs cannot make are listed with the reason (also on stderr);
    the command fails, writing nothing, when no figure can be drawn.
    """
    from signscope.figures.report import write_report

    inputs = open_inputs(runs, pair, level, reference)
    figures = write_report(inputs, out, chosen(figure))
    report_skipped(figures)
    drawn = sum(f.chart is not None for f in figures)
    print(f"wrote {out} ({drawn} of {len(figures)} figures)", file=sys.stderr)
