"""``signscope masks RUN_A RUN_B``: mask overlap (Jaccard) per level and layer."""

from __future__ import annotations

from signscope.cli.app import app
from signscope.cli.inspect_options import PerLayerOption, RunA, RunB
from signscope.cli.render import FormatOption, OutOption, OutputFormat


@app.command()
def masks(
    run_a: RunA,
    run_b: RunB,
    per_layer: PerLayerOption = False,
    fmt: FormatOption = OutputFormat.table,
    out: OutOption = None,
) -> None:
    """Mask overlap of two runs per level: Jaccard and its chance level.

    At every level both runs have: intersection, union, Jaccard, and the Jaccard expected of
    random masks with the same layerwise densities (layer '*' = global).
    """
    from signscope.api import masks as mask_overlap
    from signscope.cli.inspect_options import open_pair
    from signscope.cli.render import emit

    a, b = open_pair(run_a, run_b)
    emit({"masks": mask_overlap(a, b, per_layer=per_layer)}, fmt, out, "masks")
