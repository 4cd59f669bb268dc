"""Each figure's Vega-Lite spec, built from hand-made inspection frames (no runs, no files).

The frames use the column names of the inspection contract; the tests look at what a
reader would see: the marks, what is on each axis, the colours and how many rows reach the
chart (never per-weight rows).
"""

from __future__ import annotations

import polars as pl
import pytest

from signscope.figures import FIGURES
from signscope.figures.accuracy import accuracy_chart
from signscope.figures.bn import bn_gamma_chart
from signscope.figures.common import FigureUnavailable, sparsity_text, sparsity_x
from signscope.figures.compare import mask_overlap_chart, sign_agreement_chart
from signscope.figures.flips import flip_count_chart, flips_init_diff_chart, last_flip_chart
from signscope.figures.theme import (
    METHOD_COLOURS,
    THEME,
    method_colour,
    run_colours,
    to_spec,
)

LEVELS = 6
DENSITY = [0.8**lvl for lvl in range(LEVELS)]
RUNS = {"runs/lrr": "lrr", "runs/imp": "imp"}


# ---------------------------------------------------------------- spec helpers
def walk(spec):
    """Every (sub)spec of a layered / concatenated / faceted spec."""
    yield spec
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for sub in spec.get(key, []):
            yield from walk(sub)
    if "spec" in spec:
        yield from walk(spec["spec"])


def marks(spec) -> list[str]:
    out = []
    for s in walk(spec):
        if "mark" in s:
            mark = s["mark"]
            out.append(mark if isinstance(mark, str) else mark["type"])
    return out


def encodings(spec, mark: str) -> list[dict]:
    return [
        s.get("encoding", {})
        for s in walk(spec)
        if "mark" in s and (s["mark"] if isinstance(s["mark"], str) else s["mark"]["type"]) == mark
    ]


def dataset_rows(spec) -> list[int]:
    return sorted(len(rows) for rows in spec.get("datasets", {}).values())


# ---------------------------------------------------------------- frames
def accuracy_frame(methods=("imp", "lrr"), replicates=3) -> pl.DataFrame:
    rows = []
    for m, method in enumerate(methods):
        for lvl, d in enumerate(DENSITY):
            mean = 0.93 - 0.004 * lvl + 0.002 * m
            ci = None if replicates == 1 else 0.003
            rows.append(
                {
                    "method": method,
                    "level": lvl,
                    "density": d,
                    "sparsity": 1 - d,
                    "replicates": replicates,
                    "mean": mean,
                    "ci_low": None if ci is None else mean - ci,
                    "ci_high": None if ci is None else mean + ci,
                }
            )
    return pl.DataFrame(rows, schema_overrides={"ci_low": pl.Float64, "ci_high": pl.Float64})


def flips_levels(run: str, scale: float, per_layer: bool = False) -> pl.DataFrame:
    rows = []
    for lvl, d in enumerate(DENSITY):
        row = {
            "run": run,
            "level": lvl,
            "density": d,
            "alive": int(1000 * d),
            "flips_prev": None if lvl == 0 else int(10 * scale),
            "flips_init": int(100 * scale * (lvl + 1)),
        }
        if per_layer:
            rows.append({**row, "layer": "*"})
            rows.append({**row, "layer": "conv1.weight", "flips_init": int(40 * scale * (lvl + 1))})
            rows.append({**row, "layer": "fc.weight", "flips_init": int(60 * scale * (lvl + 1))})
        else:
            rows.append(row)
    return pl.DataFrame(rows, schema_overrides={"flips_prev": pl.Int64})


def last_flip_frame() -> pl.DataFrame:
    # Values 2 and 4 absent on purpose: the chart must show them as zero bars.
    return pl.DataFrame(
        {
            "run": ["runs/lrr"] * 4 + ["runs/imp"] * 3,
            "last_flip": [-1, 0, 1, 3, -1, 0, 5],
            "count": [600, 250, 100, 50, 500, 300, 200],
        }
    )


def masks_frame(layers=("conv1.weight", "fc.weight")) -> pl.DataFrame:
    rows = []
    for lvl, d in enumerate(DENSITY):
        for layer in ("*", *layers):
            rows.append(
                {
                    "run_a": "runs/lrr",
                    "run_b": "runs/imp",
                    "level": lvl,
                    "layer": layer,
                    "intersection": int(900 * d * d),
                    "union": int(1000 * d),
                    "jaccard": 0.9**lvl,
                    "jaccard_chance": d / (2 - d),
                }
            )
    return pl.DataFrame(rows)


def signs_frame() -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "run_a": "runs/lrr",
                "run_b": "runs/imp",
                "level": lvl,
                "layer": "*",
                "both_alive": int(800 * d),
                "agree": int(700 * d),
                "agreement": 0.875,
            }
            for lvl, d in enumerate(DENSITY)
        ]
    )


def densities() -> pl.DataFrame:
    return pl.DataFrame({"level": list(range(LEVELS)), "density": DENSITY})


def bn_frame(runs=("runs/lrr", "runs/imp"), layers=("bn1", "layer1.0.bn1", "layer1.0.bn2")):
    rows = []
    for r, run in enumerate(runs):
        for i, layer in enumerate(layers):
            base = 0.2 + 0.1 * i + 0.05 * r
            rows.append(
                {
                    "run": run,
                    "level": 5,
                    "layer": layer,
                    "count": 64,
                    "mean": base,
                    "std": 0.1,
                    "min": base - 0.3,
                    "q25": base - 0.1,
                    "median": base,
                    "q75": base + 0.1,
                    "max": base + 0.3,
                    "frac_zero": 0.0,
                    "frac_negative": 0.05,
                }
            )
    return pl.DataFrame(rows)


# ---------------------------------------------------------------- theme
def test_figure_names_are_the_documented_ones():
    assert FIGURES == (
        "accuracy",
        "last-flip",
        "flip-count",
        "flips-init-diff",
        "mask-overlap",
        "bn-gamma",
        "sign-agreement",
    )


def test_theme_is_applied_even_when_another_theme_is_active():
    import altair as alt

    chart = accuracy_chart(accuracy_frame())
    with alt.theme.enable("dark"):
        spec = to_spec(chart)
    assert spec["config"]["font"].startswith("DejaVu Sans")
    assert THEME in alt.theme.names()


def test_each_method_keeps_its_colour_in_every_figure():
    acc = to_spec(accuracy_chart(accuracy_frame(methods=("lrr", "imp"))))
    flips = to_spec(last_flip_chart(last_flip_frame(), RUNS))
    for spec in (acc, flips):
        scales = [
            e["color"]["scale"]
            for s in walk(spec)
            for e in [s.get("encoding", {})]
            if "color" in e and "scale" in e["color"]
        ]
        assert scales, "no colour scale"
        for scale in scales:
            mapping = dict(zip(scale["domain"], scale["range"], strict=True))
            assert mapping["imp"] == METHOD_COLOURS["imp"]
            assert mapping["lrr"] == METHOD_COLOURS["lrr"]


def test_unknown_methods_get_a_stable_colour_and_seeds_get_shades():
    assert method_colour("snip") == method_colour("snip")
    assert method_colour("snip") not in (METHOD_COLOURS["imp"], METHOD_COLOURS["lrr"])
    colours = run_colours({"a": "lrr", "b": "lrr", "c": "imp"})
    assert colours["a"] != colours["b"]
    assert colours["c"] == METHOD_COLOURS["imp"]


# ---------------------------------------------------------------- sparsity axis
def test_sparsity_axis_reads_like_the_papers():
    x = sparsity_x([0.8**lvl for lvl in range(22)]).to_dict()
    assert x["scale"] == {"type": "log", "reverse": True, "nice": False, "padding": 12}
    labels = [sparsity_text(v) for v in x["axis"]["values"]]
    assert labels == [
        "0%",
        "20%",
        "48.8%",
        "67.2%",
        "79%",
        "86.6%",
        "91.4%",
        "94.5%",
        "96.5%",
        "97.7%",
        "98.6%",
        "99.1%",
    ]


def test_sparsity_axis_labels_render_as_percentages():
    import re

    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(to_spec(accuracy_chart(accuracy_frame())))
    texts = re.findall(r">([0-9.]+%)<", svg)
    assert "20%" in texts and "67.2%" in texts


# ---------------------------------------------------------------- figures
def test_accuracy_spec():
    spec = to_spec(accuracy_chart(accuracy_frame()))
    assert marks(spec) == ["area", "line", "point"]
    (area,) = encodings(spec, "area")
    assert area["y"]["field"] == "ci_low" and area["y2"]["field"] == "ci_high"
    (line,) = encodings(spec, "line")
    assert line["x"]["field"] == "density" and line["y"]["field"] == "mean"
    assert line["color"]["field"] == "method"
    assert dataset_rows(spec) == [2 * LEVELS]
    # Fractions become percent on the axis.
    rows = next(iter(spec["datasets"].values()))
    assert rows[0]["mean"] == pytest.approx(93.0)


def test_accuracy_single_seed_draws_no_band():
    spec = to_spec(accuracy_chart(accuracy_frame(replicates=1)))
    assert marks(spec) == ["line", "point"]


def test_accuracy_band_only_where_there_are_seeds():
    frame = pl.concat(
        [accuracy_frame(methods=("lrr",)), accuracy_frame(methods=("imp",), replicates=1)]
    )
    spec = to_spec(accuracy_chart(frame))
    assert marks(spec) == ["area", "line", "point"]
    assert dataset_rows(spec) == [LEVELS, 2 * LEVELS]


def test_accuracy_without_any_accuracy_is_unavailable():
    frame = accuracy_frame().with_columns(pl.lit(None, pl.Float64).alias("mean"))
    with pytest.raises(FigureUnavailable, match="no run records a test accuracy"):
        accuracy_chart(frame)


def test_last_flip_spec_fills_missing_levels_and_labels_never():
    spec = to_spec(last_flip_chart(last_flip_frame(), RUNS, at_level=5))
    assert marks(spec) == ["bar"]
    assert spec["facet"]["field"] == "run"
    (bar,) = encodings(spec, "bar")
    assert bar["x"]["field"] == "last_flip" and bar["y"]["field"] == "fraction"
    assert "never" in bar["x"]["axis"]["labelExpr"]
    # -1..5 for each of the two runs.
    assert dataset_rows(spec) == [2 * 7]
    rows = next(iter(spec["datasets"].values()))
    lrr = {r["last_flip"]: r for r in rows if r["run"] == "runs/lrr"}
    assert lrr[2]["count"] == 0 and lrr[-1]["fraction"] == pytest.approx(0.6)


def test_flip_count_spec_sums_layers_once():
    frame = pl.DataFrame(
        {
            "run": ["runs/lrr"] * 6,
            "layer": ["*", "*", "a", "a", "b", "b"],
            "flip_count": [0, 2, 0, 2, 0, 2],
            "count": [10, 4, 6, 1, 4, 3],
        }
    )
    spec = to_spec(flip_count_chart(frame, {"runs/lrr": "lrr"}))
    rows = next(iter(spec["datasets"].values()))
    assert [(r["flip_count"], r["count"]) for r in rows] == [(0, 10), (1, 0), (2, 4)]


def test_flips_init_diff_spec_is_a_minus_b():
    a = flips_levels("runs/lrr", 2.0, per_layer=True)
    b = flips_levels("runs/imp", 1.0)
    spec = to_spec(flips_init_diff_chart(a, b, "runs/lrr", "runs/imp", RUNS))
    assert marks(spec) == ["rule", "line", "point"]
    (point,) = encodings(spec, "point")
    assert point["y"]["field"] == "difference"
    rows = max(spec["datasets"].values(), key=len)
    assert len(rows) == LEVELS
    assert [r["difference"] for r in rows] == [100 * (lvl + 1) for lvl in range(LEVELS)]
    assert {r["flipped_more"] for r in rows} == {"runs/lrr"}
    assert "A = runs/lrr" in spec["title"]["subtitle"]


def test_mask_overlap_spec_has_chance_line_and_heatmap():
    spec = to_spec(mask_overlap_chart(masks_frame(), densities()))
    assert sorted(marks(spec)) == ["line", "rect"]
    (line,) = encodings(spec, "line")
    assert line["y"]["field"] == "value" and line["color"]["field"] == "series"
    (rect,) = encodings(spec, "rect")
    assert (rect["x"]["field"], rect["y"]["field"], rect["color"]["field"]) == (
        "level",
        "layer",
        "jaccard",
    )
    # Observed + chance per level; level x layer cells.
    assert dataset_rows(spec) == [2 * LEVELS, 2 * LEVELS]
    assert rect["y"]["sort"] == ["conv1.weight", "fc.weight"]


def test_mask_overlap_without_shared_levels_is_unavailable():
    with pytest.raises(FigureUnavailable, match="share no level"):
        mask_overlap_chart(masks_frame().clear(), densities())


def test_sign_agreement_spec():
    spec = to_spec(sign_agreement_chart(signs_frame(), densities()))
    assert marks(spec) == ["rule", "line"]
    (line,) = encodings(spec, "line")
    assert line["y"]["field"] == "agreement" and line["y"]["axis"]["format"] == ".0%"
    assert max(dataset_rows(spec)) == LEVELS


def test_bn_gamma_spec_is_box_plots_per_layer_coloured_by_run():
    spec = to_spec(bn_gamma_chart(bn_frame(), RUNS))
    assert marks(spec) == ["rule", "rule", "bar", "tick"]
    whisker, box, median = (encodings(spec, m) for m in ("rule", "bar", "tick"))
    assert whisker[1]["y"]["field"] == "min" and whisker[1]["y2"]["field"] == "max"
    assert box[0]["y"]["field"] == "q25" and box[0]["y2"]["field"] == "q75"
    assert median[0]["y"]["field"] == "median"
    assert box[0]["x"]["field"] == "layer" and box[0]["xOffset"]["field"] == "run"
    assert box[0]["color"]["field"] == "run"
    assert box[0]["x"]["sort"] == ["bn1", "layer1.0.bn1", "layer1.0.bn2"]
    assert max(dataset_rows(spec)) == 2 * 3


def test_bn_gamma_without_batchnorm_is_unavailable():
    with pytest.raises(FigureUnavailable, match="no run has BatchNorm layers"):
        bn_gamma_chart(bn_frame().clear(), RUNS)
