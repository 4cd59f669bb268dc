"""``signscope tui [PATH...]``: the terminal UI over every run below the given paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from signscope.cli.app import app


@app.command()
def tui(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PATH",
            show_default=False,
            help="Folders to search for runs (signscope runs and plain folders of "
            "*.safetensors). Default: the current folder.",
        ),
    ] = None,
    export_dir: Annotated[
        Path,
        typer.Option("--export-dir", help="Where the e key writes figures."),
    ] = Path("figures"),
    export_format: Annotated[
        str,
        typer.Option(
            "--export-format", help="File type of exported figures: png, svg, pdf or html."
        ),
    ] = "png",
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            metavar="PATH",
            help="A checkpoint file or folder outside the runs (e.g. the base model) that "
            "sign flips count from; f cycles through it, init and rewind.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Browse runs, levels, layers, sign flips, BatchNorm and mask overlap in the terminal.

    Runs in training are followed as they go: new runs, levels and epochs appear by
    themselves, with each run's level, epoch, time since its last epoch and ETA.

    Keys: [bold]q[/bold] quit, [bold]r[/bold] reload, [bold]c[/bold] mark two runs for
    Compare, [bold]e[/bold] export the current figure, [bold]/[/bold] filter layers,
    [bold]f[/bold] flips from init, rewind or --reference, [bold]?[/bold] help.
    """
    from signscope.errors import SignscopeError, UsageError
    from signscope.tui.export import FORMATS

    if export_format not in FORMATS:
        raise UsageError(f"--export-format {export_format}: choose from {', '.join(FORMATS)}")
    # Kept as typed: they become the runs' labels, the `run` column of every table.
    given = list(paths or ["."])
    missing = [p for p in given if not Path(p).exists()]
    if missing:
        raise SignscopeError(f"tui: no such file or folder: {', '.join(missing)}")
    if reference is not None and not Path(reference).exists():
        raise SignscopeError(f"--reference {reference}: no such file or folder")
    # Textual is imported here, not at module import, so other commands start fast.
    from signscope.tui.app import SignscopeApp

    SignscopeApp(
        given, export_dir=export_dir, export_format=export_format, reference=reference
    ).run()
