"""``signscope acc RUN...``: test accuracy against density, per method, over seeds."""

from __future__ import annotations

from signscope.cli.app import app
from signscope.cli.inspect_options import RunsArgument
from signscope.cli.render import FormatOption, OutOption, OutputFormat


@app.command()
def acc(
    runs: RunsArgument,
    fmt: FormatOption = OutputFormat.table,
    out: OutOption = None,
) -> None:
    """Test accuracy against density per method, mean and 95% CI over seeds.

    Runs are grouped by method and config; seeds are the replicates. The Student-t interval
    is null for a single seed.
    """
    from signscope.api import acc as accuracy
    from signscope.cli.render import emit

    emit(accuracy(runs), fmt, out, "acc")
