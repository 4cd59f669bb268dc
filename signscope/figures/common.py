"""What every figure module shares: the sparsity axis, level labels and the 'cannot draw' error."""

from __future__ import annotations

import math
from collections.abc import Iterable

import altair as alt
import polars as pl

from signscope.display import sparsity_text
from signscope.errors import SignscopeError

MAX_TICKS = 12


class FigureUnavailable(SignscopeError):
    """The given runs cannot make this figure (too few runs, no BatchNorm, no accuracy...).

    ``export`` and ``report`` report it for that figure and go on with the others.
    """

    def __init__(self, figure: str, reason: str) -> None:
        super().__init__(f"figure {figure}: not drawn: {reason}")
        self.figure = figure
        self.reason = reason


def require(frame: pl.DataFrame, columns: Iterable[str], what: str) -> None:
    """Fail loudly (a bug, not user input) when a frame lacks the contract's columns."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing} (have {frame.columns})")


def _thin(values: list[float], limit: int = MAX_TICKS) -> list[float]:
    """Every k-th density, counted from the first pruned level (20%), plus dense and the last."""
    if len(values) <= limit:
        return values
    step = math.ceil((len(values) - 2) / (limit - 2))
    picked = [values[0], *values[1::step]]
    if picked[-1] != values[-1]:
        # A tick right before the last would collide with it: move it to the last level.
        last_index = 1 + step * (len(picked) - 2)
        picked = picked[:-1] if last_index == len(values) - 2 else picked
        picked.append(values[-1])
    return picked


def sparsity_x(densities: Iterable[float], field: str = "density") -> alt.X:
    """The paper's sparsity axis (Sec. 3 figures: 20% ... 99%).

    Iterative pruning keeps a fixed fraction per level, so levels are evenly spaced on a log
    scale of the remaining weights. The axis plots ``density`` on a reversed log scale (sparser
    to the right) and labels its ticks, placed at the levels' own densities, with the sparsity.
    """
    ticks = _thin(
        sorted({round(float(d), 12) for d in densities if d is not None and d > 0}, reverse=True)
    )
    return alt.X(
        f"{field}:Q",
        title="sparsity (log scale of remaining weights)",
        scale=alt.Scale(type="log", reverse=True, nice=False, padding=12),
        axis=alt.Axis(values=ticks, labelExpr=_SPARSITY_LABEL, labelAngle=-40, grid=True),
    )


# Vega expression twin of sparsity_text (the axis formats tick values in the browser).
_SPARSITY_LABEL = (
    "datum.value >= 0.9999999 ? '0%' : "
    "(1 - datum.value < 0.9995 ? format(100 * (1 - datum.value), '.3~r') "
    ": format(100 * (1 - datum.value), '.4~r')) + '%'"
)


def level_label_expr(levels: pl.DataFrame) -> str:
    """A Vega label expression that shows a discrete ``level`` axis as sparsity ("48.8%")."""
    require(levels, ("level", "density"), "levels")
    pairs = levels.select("level", "density").unique("level").sort("level").iter_rows()
    table = ", ".join(f"'{int(lvl)}': '{sparsity_text(d)}'" for lvl, d in pairs if d is not None)
    return f"({{{table}}})[datum.value] || datum.value"


def global_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The whole-network rows (``layer == "*"``) of a table that may carry a ``layer`` column.

    Per-layer tables hold the global rows beside the layers; summing every row would count
    each weight twice, and per-layer densities do not add up, so only those rows are used.
    """
    if "layer" not in frame.columns:
        return frame
    return frame.filter(pl.col("layer") == "*").drop("layer")
