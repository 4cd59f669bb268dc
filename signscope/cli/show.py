"""``signscope show RUN``: config, levels and layers of one run."""

from __future__ import annotations

from signscope.cli.app import app
from signscope.cli.inspect_options import LevelOption, RunArgument
from signscope.cli.render import FormatOption, OutOption, OutputFormat


@app.command()
def show(
    run: RunArgument,
    level: LevelOption = None,
    fmt: FormatOption = OutputFormat.table,
    out: OutOption = None,
) -> None:
    """A run at a glance: config, levels, layers.

    Its config, density and test accuracy per level, and every tensor with shape, dtype and
    (prunable ones) alive count and density at --level.
    """
    from signscope.api import open_run
    from signscope.cli.render import emit

    emit(open_run(run).show(level), fmt, out, "show")
