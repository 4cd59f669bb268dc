"""Terminal charts (textual-plotext) for the tabs: bars for histograms, lines against level.

Iterative pruning removes a fixed fraction per level, so the paper's sparsity axes (Fig 3, 4,
13) space levels evenly; the charts here do the same: x is the level, ticks are labelled with
the level's sparsity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from textual_plotext import PlotextPlot

from signscope.display import METHOD_COLOURS, rgb

# Series that are not a known method take plotext's named colours.
_SPARE = ("magenta", "cyan", "red", "yellow", "green", "white")
# plotext takes RGB triples, not CSS hex.
_METHOD_RGB = {method: rgb(colour) for method, colour in METHOD_COLOURS.items()}


def series_colour(name: str | None, index: int) -> str | tuple[int, int, int]:
    """A known method's colour (as in the figures), else a spare one by position."""
    return _METHOD_RGB.get(name or "", _SPARE[index % len(_SPARE)])


def compact(value: float) -> str:
    """``754348`` -> ``754k``: axis labels that fit a terminal column."""
    v = abs(value)
    if v >= 1e6:
        return f"{value / 1e6:.3g}M"
    if v >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


def count_ticks(top: float, n: int = 5) -> list[float]:
    """About ``n`` round ticks from 0 to at least ``top`` (1, 2 or 5 times a power of ten)."""
    if top <= 0:
        return [0.0]
    raw = top / (n - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(math.ceil(top / step)) + 1)]


def _reset(plot: PlotextPlot, title: str, xlabel: str, ylabel: str) -> None:
    plt = plot.plt
    plt.clear_figure()
    plt.title(title)
    plt.xlabel(xlabel)
    plt.ylabel(ylabel)


def draw_bars(
    plot: PlotextPlot,
    labels: Sequence,
    counts: Sequence[float],
    title: str,
    xlabel: str,
    ylabel: str = "weights",
    colour: str | tuple[int, int, int] = "blue",
) -> None:
    """A histogram already binned by the inspection layer (one bar per label)."""
    _reset(plot, title, xlabel, ylabel)
    if len(labels):
        plot.plt.bar([str(x) for x in labels], list(counts), color=colour, width=0.6)
        ticks = count_ticks(max(counts))
        plot.plt.yticks(ticks, [compact(t) for t in ticks])
    plot.refresh()


def _plot_points(plt, name, xs, ys, colour, yside=None) -> None:
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
    if points:
        plt.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            label=name,
            marker="braille",
            color=colour,
            yside=yside,
        )


def draw_lines(
    plot: PlotextPlot,
    series: Sequence[tuple[str, Sequence[int], Sequence[float]]],
    ticks: Sequence[tuple[int, str]],
    title: str,
    ylabel: str,
    xlabel: str = "sparsity",
    colours: Sequence[str | tuple[int, int, int]] | None = None,
) -> None:
    """One line per ``(name, levels, values)``; ``ticks`` label levels with their sparsity."""
    _reset(plot, title, xlabel, ylabel)
    plt = plot.plt
    for i, (name, xs, ys) in enumerate(series):
        _plot_points(plt, name, xs, ys, colours[i] if colours else series_colour(name, i))
    if ticks:
        step = max(1, len(ticks) // 8)
        shown = list(ticks)[::step]
        plt.xticks([t for t, _ in shown], [label for _, label in shown])
    plot.refresh()


def draw_epochs(plot: PlotextPlot, epochs: Sequence, title: str) -> None:
    """Accuracy (left axis) and training loss (right axis) per epoch, the levels one after
    the other as in TensorBoard's step axis; the ticks mark where each level starts.
    ``epochs`` are :class:`signscope.training.Epoch` records."""
    _reset(plot, title, "level", "accuracy")
    plt = plot.plt
    xs = list(range(1, len(epochs) + 1))
    _plot_points(plt, "train acc", xs, [e.train_acc for e in epochs], "cyan")
    _plot_points(plt, "test acc", xs, [e.test_acc for e in epochs], "green")
    _plot_points(plt, "loss", xs, [e.train_loss for e in epochs], "red", yside="right")
    plt.ylabel("loss", yside="right")
    starts = [(x, f"L{e.level}") for x, e in zip(xs, epochs, strict=True) if x == 1 or e.epoch == 1]
    if starts:
        shown = starts[:: max(1, len(starts) // 8)]
        plt.xticks([t for t, _ in shown], [label for _, label in shown])
    plot.refresh()
