"""``bn-gamma``: the per-layer distribution of BatchNorm scales at one level (Fig 10, 11).

Drawn from the summary rows of ``Run.bn()`` (quartiles, min, max per layer), not from the
individual gammas: one box per layer and run, whiskers from min to max.
"""

from __future__ import annotations

from collections.abc import Mapping

import altair as alt
import polars as pl

from signscope.figures.common import FigureUnavailable, require
from signscope.figures.theme import run_scale

NAME = "bn-gamma"
COLUMNS = (
    "run",
    "level",
    "layer",
    "count",
    "mean",
    "min",
    "q25",
    "median",
    "q75",
    "max",
    "frac_zero",
    "frac_negative",
)


def bn_gamma_chart(bn: pl.DataFrame, run_methods: Mapping[str, str | None]) -> alt.LayerChart:
    """Box plots of gamma per BN layer (x, in model order), one colour per run side by side."""
    require(bn, COLUMNS, NAME)
    if bn.is_empty():
        raise FigureUnavailable(NAME, "no run has BatchNorm layers")
    rows = bn.select(*COLUMNS)
    present = rows["run"].unique(maintain_order=True).to_list()
    runs = [r for r in run_methods if r in present] + [r for r in present if r not in run_methods]
    layers = rows["layer"].unique(maintain_order=True).to_list()
    levels = sorted(set(rows["level"].to_list()))
    level_text = (
        f"level {levels[0]}" if len(levels) == 1 else "levels " + ", ".join(map(str, levels))
    )
    colour = alt.Color("run:N", scale=run_scale(runs, run_methods), sort=runs, title="run")
    tooltip = [
        alt.Tooltip("run:N"),
        alt.Tooltip("layer:N"),
        alt.Tooltip("level:Q"),
        alt.Tooltip("count:Q", format=","),
        alt.Tooltip("min:Q", format=".3f"),
        alt.Tooltip("q25:Q", format=".3f"),
        alt.Tooltip("median:Q", format=".3f"),
        alt.Tooltip("q75:Q", format=".3f"),
        alt.Tooltip("max:Q", format=".3f"),
        alt.Tooltip("mean:Q", format=".3f"),
        alt.Tooltip("frac_zero:Q", format=".1%", title="|γ| < 1e-3"),
        alt.Tooltip("frac_negative:Q", format=".1%", title="γ < 0"),
    ]
    step = max(14, 9 * len(runs) + 6)
    base = alt.Chart(rows).encode(
        x=alt.X(
            "layer:N",
            sort=layers,
            title="BatchNorm layer",
            axis=alt.Axis(labelAngle=-60, labelLimit=200),
        ),
        xOffset=alt.XOffset("run:N", sort=runs),
        color=colour,
        tooltip=tooltip,
    )
    whisker = base.mark_rule().encode(y=alt.Y("min:Q", title="γ (BatchNorm scale)"), y2="max:Q")
    box = base.mark_bar(size=max(4, step // max(1, len(runs)) - 3)).encode(y="q25:Q", y2="q75:Q")
    median = base.mark_tick(thickness=1.5, size=max(4, step // max(1, len(runs)) - 3)).encode(
        y="median:Q", color=alt.value("black")
    )
    zero = (
        alt.Chart(pl.DataFrame({"y": [0.0]}))
        .mark_rule(color="#aaaaaa", strokeDash=[4, 3])
        .encode(y="y:Q")
    )
    return alt.layer(zero, whisker, box, median).properties(
        width=alt.Step(step),
        height=280,
        title=alt.Title(
            "BatchNorm γ per layer",
            subtitle=f"{level_text}; box: quartiles, line: median, whiskers: min to max "
            "(Fig 10, 11)",
        ),
    )
