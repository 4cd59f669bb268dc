"""``signscope export RUN... --out DIR``: the paper's figures as PNG, SVG, PDF or HTML files.

The figure modules (Altair, vl-convert) are imported inside the command, so ``signscope
--help`` does not pay for them. The run/pair/level/figure options are shared with ``report``.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from signscope.cli.app import app
from signscope.cli.inspect_options import ReferenceOption
from signscope.errors import SignscopeError
from signscope.figures import FIGURES, FigureFormat

FigureName = StrEnum("FigureName", {name.replace("-", "_"): name for name in FIGURES})


RunsArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="RUN...",
        help="Run folders (signscope runs or plain folders of .safetensors), as many as you like. "
        "Pair figures compare the first two.",
        show_default=False,
    ),
]
PairOption = Annotated[
    tuple[str, str] | None,
    typer.Option(
        "--pair",
        metavar="A B",
        help="The two runs that flips-init-diff, mask-overlap and sign-agreement compare "
        "(default: the first two runs).",
        show_default=False,
    ),
]
LevelOption = Annotated[
    int | None,
    typer.Option(
        "--level",
        "-l",
        help="The level of bn-gamma, last-flip and flip-count "
        "(default: the last level every run has).",
        show_default=False,
    ),
]
FigureOption = Annotated[
    list[FigureName] | None,
    typer.Option(
        "--figure",
        metavar="NAME",
        help="Only this figure; repeat for several (default: all): " + ", ".join(FIGURES) + ".",
        show_default=False,
    ),
]


def open_inputs(
    runs: list[str] | None, pair: tuple[str, str] | None, level: int | None, reference: str
):
    from signscope.figures.build import FigureInputs

    return FigureInputs(runs or [], pair, level, reference)


def chosen(figures: list[FigureName] | None) -> list[str]:
    return [f.value for f in figures] if figures else list(FIGURES)


def report_skipped(figures) -> None:
    """One stderr line per figure that could not be drawn, with the reason."""
    for figure in figures:
        if figure.chart is None:
            print(f"skipped {figure.name}: {figure.reason}", file=sys.stderr)


@app.command("export")
def export_command(
    runs: RunsArg = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the figure files "
            "(NAME.FORMAT; earlier exports of a figure are replaced).",
            show_default=False,
        ),
    ] = ...,
    fmt: Annotated[
        FigureFormat,
        typer.Option("--format", "-f", help="png, svg, pdf, or html (offline, interactive)."),
    ] = FigureFormat.png,
    figure: FigureOption = None,
    pair: PairOption = None,
    level: LevelOption = None,
    reference: ReferenceOption = "init",
) -> None:
    """Write the paper's figures as files named after them (accuracy.png, ...).

    A figure the runs cannot make (mask-overlap from one run,
    bn-gamma without BatchNorm) is reported on stderr and skipped.
    The command fails only when no figure could be written.
    """
    from signscope.figures.build import build
    from signscope.figures.export import write_figures

    inputs = open_inputs(runs, pair, level, reference)
    figures = build(inputs, chosen(figure))
    report_skipped(figures)
    written = write_figures(figures, out, fmt.value)
    if not written:
        raise SignscopeError(
            "no figure written: none of the requested figures can be drawn "
            "from these runs (reasons above)"
        )
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
