"""Sign-flip figures: ``last-flip`` and ``flip-count`` (Fig 5) and ``flips-init-diff`` (Fig 13).

Inputs are the frames of ``Run.flips()`` (SPEC section 3): already one row per value and run,
so the charts receive a few dozen rows however large the network is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt
import polars as pl

from signscope.display import UNKNOWN_METHOD
from signscope.figures.common import FigureUnavailable, global_rows, require, sparsity_x
from signscope.figures.theme import method_scale, run_scale

FACET_COLUMNS = 3


def _histogram_rows(
    frame: pl.DataFrame, value: str, runs: Sequence[str], low: int, high: int | None
) -> pl.DataFrame:
    """Whole-network rows only, absent values as zero bars, and each value's share of the run."""
    require(frame, ("run", value, "count"), value)
    totals = global_rows(frame).group_by("run", value).agg(pl.col("count").sum())
    top = max(high if high is not None else low, totals[value].max() if totals.height else low)
    grid = pl.DataFrame({"run": list(runs)}).join(
        pl.DataFrame({value: list(range(low, int(top) + 1))}, schema={value: pl.Int64}),
        how="cross",
    )
    rows = grid.join(
        totals.with_columns(pl.col(value).cast(pl.Int64)), on=["run", value], how="left"
    ).with_columns(pl.col("count").fill_null(0).cast(pl.Int64))
    return rows.with_columns(
        (pl.col("count") / pl.col("count").sum().over("run")).fill_nan(0.0).alias("fraction")
    )


def _histogram(
    rows: pl.DataFrame,
    value: str,
    runs: Sequence[str],
    run_methods: Mapping[str, str | None],
    x_title: str,
    label_expr: str | None,
    title: alt.Title,
) -> alt.FacetChart:
    rows = rows.with_columns(
        pl.col("run")
        .replace_strict(
            {r: run_methods.get(r) or UNKNOWN_METHOD for r in runs}, return_dtype=pl.String
        )
        .alias("method")
    )
    methods = [run_methods.get(r) or UNKNOWN_METHOD for r in runs]
    axis = alt.Axis(labelAngle=0, labelExpr=label_expr) if label_expr else alt.Axis(labelAngle=0)
    bars = (
        alt.Chart(rows)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:O", title=x_title, axis=axis),
            y=alt.Y("fraction:Q", title="share of weights", axis=alt.Axis(format=".0%")),
            color=alt.Color("method:N", scale=method_scale(methods), title="method"),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip(f"{value}:O", title=x_title),
                alt.Tooltip("count:Q", format=","),
                alt.Tooltip("fraction:Q", format=".2%"),
            ],
        )
        .properties(width=260, height=180)
    )
    return bars.facet(
        facet=alt.Facet("run:N", sort=list(runs), title=None, header=alt.Header(labelLimit=300)),
        columns=min(FACET_COLUMNS, len(runs)),
    ).properties(title=title)


def last_flip_chart(
    last_flip: pl.DataFrame, run_methods: Mapping[str, str | None], at_level: int | None = None
) -> alt.FacetChart:
    """Histogram per run of ``last_flip``: the level after which a weight's sign stays put
    (Fig 5 top, "the pruning iteration at which the signs do not change anymore").

    ``at_level`` is the level the weights were taken at, so that levels where no sign
    flipped for the last time still get a (zero) bar.
    """
    runs = _runs(last_flip, run_methods, "last-flip")
    rows = _histogram_rows(last_flip, "last_flip", runs, -1, at_level)
    level = "the last level" if at_level is None else f"level {at_level}"
    return _histogram(
        rows,
        "last_flip",
        runs,
        run_methods,
        "level of the last sign flip",
        "datum.value < 0 ? 'never' : datum.value",
        alt.Title(
            "When signs stop changing",
            subtitle=f"weights alive at {level}; 'never': sign as at the reference (Fig 5 top)",
        ),
    )


def flip_count_chart(
    flip_count: pl.DataFrame, run_methods: Mapping[str, str | None], at_level: int | None = None
) -> alt.FacetChart:
    """Histogram per run of ``flip_count``: sign switches along each weight's trajectory
    (init, level 0, ..., level K) (Fig 5 bottom)."""
    runs = _runs(flip_count, run_methods, "flip-count")
    rows = _histogram_rows(flip_count, "flip_count", runs, 0, None)
    level = "the last level" if at_level is None else f"level {at_level}"
    return _histogram(
        rows,
        "flip_count",
        runs,
        run_methods,
        "number of sign switches",
        None,
        alt.Title(
            "How often signs switch",
            subtitle=f"weights alive at {level}, over levels 0..K from the reference "
            "(Fig 5 bottom)",
        ),
    )


def _runs(frame: pl.DataFrame, run_methods: Mapping[str, str | None], figure: str) -> list[str]:
    require(frame, ("run",), figure)
    present = frame["run"].unique(maintain_order=True).to_list()
    runs = [r for r in run_methods if r in present] + [r for r in present if r not in run_methods]
    if not runs:
        raise FigureUnavailable(figure, "no weight is alive at the chosen level in any run")
    return runs


def _per_level(levels: pl.DataFrame) -> pl.DataFrame:
    require(levels, ("level", "density", "flips_init"), "flips levels")
    return global_rows(levels).select("level", "density", "flips_init")


def flips_init_diff_chart(
    levels_a: pl.DataFrame,
    levels_b: pl.DataFrame,
    run_a: str,
    run_b: str,
    run_methods: Mapping[str, str | None],
) -> alt.LayerChart:
    """``flips_init`` of run A minus run B at every level both have (Fig 13: LRR minus IMP).

    Positive means A flipped more signs away from the reference than B. The x axis uses A's
    densities.
    """
    a = _per_level(levels_a)
    b = _per_level(levels_b).select("level", pl.col("flips_init").alias("flips_init_b"))
    rows = (
        a.rename({"flips_init": "flips_init_a"})
        .join(b, on="level", how="inner")
        .sort("level")
        .with_columns((pl.col("flips_init_a") - pl.col("flips_init_b")).alias("difference"))
    )
    if rows.is_empty():
        raise FigureUnavailable("flips-init-diff", f"{run_a} and {run_b} share no level")
    rows = rows.with_columns(
        pl.when(pl.col("difference") > 0)
        .then(pl.lit(run_a))
        .when(pl.col("difference") < 0)
        .then(pl.lit(run_b))
        .otherwise(pl.lit("equal"))
        .alias("flipped_more")
    )
    pair = [run_a, run_b] if run_a != run_b else [run_a]
    scale = run_scale(pair, run_methods)
    scale = alt.Scale(domain=[*scale.domain, "equal"], range=[*scale.range, "#888888"])
    base = alt.Chart(rows).encode(x=sparsity_x(rows["density"].to_list()))
    zero = alt.Chart(pl.DataFrame({"zero": [0]})).mark_rule(color="#888888").encode(y="zero:Q")
    line = base.mark_line(color="#666666").encode(
        y=alt.Y("difference:Q", title="flips_init(A) − flips_init(B)")
    )
    points = base.mark_point(size=60).encode(
        y="difference:Q",
        color=alt.Color("flipped_more:N", scale=scale, title="flipped more"),
        tooltip=[
            alt.Tooltip("level:Q"),
            alt.Tooltip("density:Q", format=".4f"),
            alt.Tooltip("flips_init_a:Q", title="flips_init A", format=","),
            alt.Tooltip("flips_init_b:Q", title="flips_init B", format=","),
            alt.Tooltip("difference:Q", format=","),
        ],
    )
    return alt.layer(zero, line, points).properties(
        title=alt.Title(
            "Sign flips from the reference: A minus B",
            subtitle=[f"A = {run_a}", f"B = {run_b}", "positive: A flipped more signs (Fig 13)"],
        )
    )
