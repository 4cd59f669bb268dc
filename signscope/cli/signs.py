"""``signscope signs RUN_A RUN_B``: sign agreement of two runs per level and layer."""

from __future__ import annotations

from signscope.cli.app import app
from signscope.cli.inspect_options import PerLayerOption, RunA, RunB
from signscope.cli.render import FormatOption, OutOption, OutputFormat


@app.command()
def signs(
    run_a: RunA,
    run_b: RunB,
    per_layer: PerLayerOption = False,
    fmt: FormatOption = OutputFormat.table,
    out: OutOption = None,
) -> None:
    """Sign agreement of two runs per level.

    At every level both runs have: among the weights alive in both, how many have equal
    signs (layer '*' = global).
    """
    from signscope.api import signs as sign_agreement
    from signscope.cli.inspect_options import open_pair
    from signscope.cli.render import emit

    a, b = open_pair(run_a, run_b)
    emit({"signs": sign_agreement(a, b, per_layer=per_layer)}, fmt, out, "signs")
