"""Figures that compare two runs: ``mask-overlap`` and ``sign-agreement``.

Inputs are ``signscope.masks(a, b, per_layer=True)`` and ``signscope.signs(a, b)`` (SPEC
section 3) plus the runs' per-level densities for the sparsity axis. The paper compares IMP
and LRR masks by their overlap and the signs of the weights both keep (Sec. 3, Fig 3, 4).
"""

from __future__ import annotations

import altair as alt
import polars as pl

from signscope.figures.common import (
    FigureUnavailable,
    level_label_expr,
    require,
    sparsity_x,
)

GLOBAL = "*"
OBSERVED = "observed"
CHANCE = "chance"


def _with_density(frame: pl.DataFrame, densities: pl.DataFrame) -> pl.DataFrame:
    require(densities, ("level", "density"), "densities")
    dens = densities.select(pl.col("level").cast(pl.Int64), "density").unique("level")
    return frame.with_columns(pl.col("level").cast(pl.Int64)).join(dens, on="level", how="inner")


def _pair_text(frame: pl.DataFrame) -> tuple[str, str]:
    return str(frame["run_a"][0]), str(frame["run_b"][0])


def mask_overlap_chart(masks: pl.DataFrame, densities: pl.DataFrame) -> alt.HConcatChart:
    """Jaccard index of two runs' masks against chance per level, beside a level x layer heatmap.

    ``masks`` holds the global rows (``layer == "*"``) and, for the heatmap, the per-layer rows.
    Chance is the expected Jaccard of independent random masks with the same per-layer
    densities, so only the distance above it says the masks share structure.
    """
    require(
        masks,
        ("run_a", "run_b", "level", "layer", "intersection", "union", "jaccard", "jaccard_chance"),
        "mask-overlap",
    )
    if masks.is_empty():
        raise FigureUnavailable("mask-overlap", "the two runs share no level")
    run_a, run_b = _pair_text(masks)
    overall = _with_density(masks.filter(pl.col("layer") == GLOBAL), densities).sort("level")
    layers = masks.filter(pl.col("layer") != GLOBAL)
    if overall.is_empty():
        raise FigureUnavailable("mask-overlap", "no global overlap rows to draw")
    long = overall.unpivot(
        index=["level", "density", "intersection", "union"],
        on=["jaccard", "jaccard_chance"],
        variable_name="series",
        value_name="value",
    ).with_columns(pl.col("series").replace_strict({"jaccard": OBSERVED, "jaccard_chance": CHANCE}))
    lines = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=sparsity_x(overall["density"].to_list()),
            y=alt.Y(
                "value:Q",
                title="Jaccard index: |A and B| / |A or B|",
                scale=alt.Scale(domain=[0, 1]),
            ),
            color=alt.Color(
                "series:N",
                title=None,
                sort=[OBSERVED, CHANCE],
                scale=alt.Scale(domain=[OBSERVED, CHANCE], range=["#333333", "#aaaaaa"]),
                legend=alt.Legend(orient="bottom", direction="vertical"),
            ),
            strokeDash=alt.StrokeDash(
                "series:N",
                sort=[OBSERVED, CHANCE],
                legend=None,
                scale=alt.Scale(domain=[OBSERVED, CHANCE], range=[[1, 0], [5, 3]]),
            ),
            tooltip=[
                alt.Tooltip("level:Q"),
                alt.Tooltip("series:N"),
                alt.Tooltip("value:Q", format=".4f", title="Jaccard"),
                alt.Tooltip("intersection:Q", format=","),
                alt.Tooltip("union:Q", format=","),
            ],
        )
        .properties(title="globally", width=360, height=260)
    )
    charts: list[alt.Chart] = [lines]
    if not layers.is_empty():
        order = layers["layer"].unique(maintain_order=True).to_list()
        heat = (
            alt.Chart(
                layers.select(
                    "level", "layer", "jaccard", "jaccard_chance", "intersection", "union"
                )
            )
            .mark_rect()
            .encode(
                x=alt.X(
                    "level:O",
                    title="sparsity",
                    axis=alt.Axis(labelExpr=level_label_expr(overall), labelAngle=-40),
                ),
                y=alt.Y("layer:N", sort=order, title=None, axis=alt.Axis(labelLimit=220)),
                color=alt.Color(
                    "jaccard:Q", title="Jaccard", scale=alt.Scale(scheme="viridis", domain=[0, 1])
                ),
                tooltip=[
                    alt.Tooltip("layer:N"),
                    alt.Tooltip("level:O"),
                    alt.Tooltip("jaccard:Q", format=".4f"),
                    alt.Tooltip("jaccard_chance:Q", format=".4f", title="chance"),
                    alt.Tooltip("intersection:Q", format=","),
                    alt.Tooltip("union:Q", format=","),
                ],
            )
            .properties(title="per layer", width=alt.Step(22), height=alt.Step(14))
        )
        charts.append(heat)
    return (
        alt.hconcat(*charts)
        .resolve_scale(color="independent")
        .properties(
            title=alt.Title(
                "Mask overlap (Jaccard) against chance",
                subtitle=[
                    f"A = {run_a}",
                    f"B = {run_b}",
                    "chance: independent random masks with the same layer densities",
                ],
            )
        )
    )


def sign_agreement_chart(signs: pl.DataFrame, densities: pl.DataFrame) -> alt.LayerChart:
    """Share of the weights alive in both runs whose signs agree, per level (global rows).

    The dashed rule at 50% is what two runs with independent signs would show.
    """
    require(
        signs,
        ("run_a", "run_b", "level", "layer", "both_alive", "agree", "agreement"),
        "sign-agreement",
    )
    rows = _with_density(signs.filter(pl.col("layer") == GLOBAL), densities).sort("level")
    rows = rows.filter(pl.col("agreement").is_not_null() & pl.col("agreement").is_not_nan())
    if rows.is_empty():
        raise FigureUnavailable("sign-agreement", "no level has weights alive in both runs")
    run_a, run_b = _pair_text(rows)
    rows = rows.select("level", "density", "both_alive", "agree", "agreement")
    line = (
        alt.Chart(rows)
        .mark_line(point=alt.OverlayMarkDef(color="#333333"), color="#333333")
        .encode(
            x=sparsity_x(rows["density"].to_list()),
            y=alt.Y(
                "agreement:Q",
                title="signs that agree (weights alive in both)",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format=".0%"),
            ),
            tooltip=[
                alt.Tooltip("level:Q"),
                alt.Tooltip("agreement:Q", format=".2%"),
                alt.Tooltip("agree:Q", format=","),
                alt.Tooltip("both_alive:Q", format=","),
            ],
        )
    )
    half = (
        alt.Chart(pl.DataFrame({"y": [0.5]}))
        .mark_rule(color="#aaaaaa", strokeDash=[5, 3])
        .encode(y="y:Q")
    )
    return alt.layer(half, line).properties(
        title=alt.Title(
            "Sign agreement of two runs",
            subtitle=[f"A = {run_a}", f"B = {run_b}", "dashed: 50%, independent signs"],
        )
    )
