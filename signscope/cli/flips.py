"""``signscope flips RUN...``: sign flips per level, last flips and flip counts (SPEC section 4)."""

from __future__ import annotations

from typing import Annotated

import typer

from signscope.cli.app import app
from signscope.cli.inspect_options import PerLayerOption, ReferenceOption, RunsArgument
from signscope.cli.render import FormatOption, OutOption, OutputFormat


@app.command()
def flips(
    runs: RunsArgument,
    at_level: Annotated[
        int | None,
        typer.Option(
            "--at-level",
            "-k",
            help="Cut the runs at level K: levels 0..K, last_flip and "
            "flip_count over the weights alive at K.",
            show_default="last level",
        ),
    ] = None,
    reference: ReferenceOption = "init",
    per_layer: PerLayerOption = False,
    fmt: FormatOption = OutputFormat.table,
    out: OutOption = None,
) -> None:
    """Sign flips between levels and from the initial signs (paper Fig 5, 13).

    Tables: [bold]levels[/bold] (density, alive, flips_prev, flips_init per level),
    [bold]last_flip[/bold] (level of each alive weight's last flip, -1 = never) and
    [bold]flip_count[/bold] (flips per alive weight along its sign trajectory); with
    --reference PATH also [bold]reference[/bold] (tensors compared and skipped).
    """
    import polars as pl

    from signscope.api import open_run
    from signscope.cli.inspect_options import progress_bar
    from signscope.cli.render import emit

    opened = [open_run(r) for r in runs]
    parts: dict[str, list[pl.DataFrame]] = {}
    for run in opened:
        with progress_bar(f"flips {run.label}") as progress:
            tables = run.flips(
                at_level=at_level, reference=reference, per_layer=per_layer, progress=progress
            )
        for name, df in tables.items():
            parts.setdefault(name, []).append(df)
    emit({name: pl.concat(dfs) for name, dfs in parts.items()}, fmt, out, "flips")
