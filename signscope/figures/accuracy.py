"""``accuracy``: test accuracy against sparsity, one line per method with its 95% band.

Reproduces the layout of the paper's accuracy plots (Fig 1, 2b-d, 3, 6, 7, 16, 17): mean over
seeds at every level, a band for the 95% Student-t interval, sparsity on a log axis.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from signscope.display import UNKNOWN_METHOD
from signscope.figures.common import FigureUnavailable, require, sparsity_x
from signscope.figures.theme import method_scale

NAME = "accuracy"
COLUMNS = ("method", "level", "density", "replicates", "mean", "ci_low", "ci_high")


def _as_percent(frame: pl.DataFrame) -> pl.DataFrame:
    # Runs record accuracy as a fraction (0.93); a run that recorded percent (93.0) is left as is.
    peak = frame.select(pl.max_horizontal(pl.col("mean", "ci_high").max())).item()
    factor = 100.0 if peak is not None and peak <= 1.0 else 1.0
    return frame.with_columns((pl.col(c) * factor).alias(c) for c in ("mean", "ci_low", "ci_high"))


def accuracy_chart(accuracy: pl.DataFrame) -> alt.LayerChart:
    """Chart ``signscope.acc(runs)["accuracy"]``; levels without a known accuracy are left out."""
    require(accuracy, COLUMNS, "accuracy")
    rows = accuracy.filter(pl.col("mean").is_not_null() & pl.col("mean").is_not_nan())
    if rows.is_empty():
        raise FigureUnavailable(NAME, "no run records a test accuracy")
    rows = _as_percent(
        rows.select(*COLUMNS).with_columns(pl.col("method").fill_null(UNKNOWN_METHOD))
    ).sort("method", "level")
    methods = rows["method"].unique(maintain_order=True).to_list()
    shared = {
        "x": sparsity_x(rows["density"].to_list()),
        "color": alt.Color("method:N", scale=method_scale(methods), title="method"),
    }
    base = alt.Chart(rows).encode(**shared)
    tooltip = [
        alt.Tooltip("method:N"),
        alt.Tooltip("level:Q"),
        alt.Tooltip("density:Q", format=".4f", title="remaining weights"),
        alt.Tooltip("mean:Q", format=".2f", title="mean test accuracy (%)"),
        alt.Tooltip("ci_low:Q", format=".2f", title="95% CI low"),
        alt.Tooltip("ci_high:Q", format=".2f", title="95% CI high"),
        alt.Tooltip("replicates:Q"),
    ]
    line = base.mark_line().encode(
        y=alt.Y("mean:Q", title="test accuracy (%)", scale=alt.Scale(zero=False))
    )
    points = base.mark_point().encode(y="mean:Q", tooltip=tooltip)
    layers = [line, points]
    banded = rows.filter(pl.col("ci_low").is_not_null() & pl.col("ci_high").is_not_null())
    if banded.height:
        # Only rows with an interval (2+ seeds): a band over none makes Vega warn about an
        # empty extent.
        layers.insert(
            0, alt.Chart(banded).mark_area().encode(**shared, y="ci_low:Q", y2="ci_high:Q")
        )
    return alt.layer(*layers).properties(
        title=alt.Title(
            "Test accuracy vs sparsity",
            subtitle="mean over seeds; band: 95% confidence interval (Student t)",
        )
    )
