"""``signscope bn RUN...``: BatchNorm gamma statistics and histograms per BN layer."""

from __future__ import annotations

from signscope.cli.app import app
from signscope.cli.inspect_options import LevelOption, RunsArgument
from signscope.cli.render import FormatOption, OutOption, OutputFormat


@app.command()
def bn(
    runs: RunsArgument,
    level: LevelOption = None,
    fmt: FormatOption = OutputFormat.table,
    out: OutOption = None,
) -> None:
    """BatchNorm scale (gamma) statistics per BN layer (paper Fig 10, 11).

    Count, mean, std, quartiles, fraction near zero (|gamma| < 1e-3) and negative, plus a
    histogram with 0.05-wide bins.
    """
    import sys

    import polars as pl

    from signscope.api import open_run
    from signscope.cli.render import emit

    opened = [open_run(r) for r in runs]
    tables = [run.bn(level) for run in opened]
    for run in opened:
        if not run.batchnorm:
            print(
                f"note: {run.label} has no BatchNorm layers (NAME.weight beside "
                "NAME.running_var); LayerNorm and RMSNorm scales are not BatchNorm",
                file=sys.stderr,
            )
    emit({name: pl.concat([t[name] for t in tables]) for name in ("bn", "bn_hist")}, fmt, out, "bn")
