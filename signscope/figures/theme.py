"""One Altair theme for every signscope figure, and a colour scale per method.

The colours themselves (:data:`signscope.display.METHOD_COLOURS`) are shared with the TUI's
charts: a method has the same colour in the terminal, in every figure, file and report.
Several runs of one method (seeds) get shades of the method's colour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import altair as alt

from signscope.display import (
    METHOD_COLOURS,
    SPARE_COLOURS,
    UNKNOWN_METHOD,
    method_colour,
    rgb,
)

THEME = "signscope"
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
WIDTH = 420
HEIGHT = 260


def method_scale(methods: Iterable[str | None]) -> alt.Scale:
    """A colour scale whose domain is ``methods`` (in order) and whose range is their colours."""
    domain = list(dict.fromkeys(UNKNOWN_METHOD if m is None else m for m in methods))
    return alt.Scale(domain=domain, range=[method_colour(m) for m in domain])


def _mix(hex_colour: str, towards: str, t: float) -> str:
    a, b = rgb(hex_colour), rgb(towards)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def shades(base: str, n: int) -> list[str]:
    """``n`` shades of ``base``, from darker to lighter, with ``base`` itself in the middle."""
    if n <= 1:
        return [base]
    out = []
    for i in range(n):
        t = -0.3 + 0.65 * i / (n - 1)
        out.append(_mix(base, "#000000", -t) if t < 0 else _mix(base, "#ffffff", t))
    return out


def run_colours(run_methods: Mapping[str, str | None]) -> dict[str, str]:
    """A colour per run label: its method's colour, in shades when a method has several runs."""
    by_method: dict[str | None, list[str]] = {}
    for run, method in run_methods.items():
        by_method.setdefault(method, []).append(run)
    colours: dict[str, str] = {}
    for method, runs in by_method.items():
        for run, colour in zip(runs, shades(method_colour(method), len(runs)), strict=True):
            colours[run] = colour
    return colours


def run_scale(runs: Sequence[str], run_methods: Mapping[str, str | None]) -> alt.Scale:
    colours = run_colours({r: run_methods.get(r) for r in runs})
    return alt.Scale(domain=list(runs), range=[colours[r] for r in runs])


@alt.theme.register(THEME, enable=True)
def signscope_theme() -> alt.theme.ThemeConfig:
    """Fonts and sizes shared by every figure (the colours are set per encoding, above)."""
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "background": "white",
        "padding": 8,
        "config": {
            "font": FONT,
            "view": {"stroke": "#dddddd"},
            "title": {
                "fontSize": 15,
                "anchor": "start",
                "subtitleFontSize": 12,
                "subtitleColor": "#555555",
                "offset": 10,
            },
            "axis": {
                "labelFontSize": 11,
                "titleFontSize": 12,
                "titleFontWeight": "normal",
                "gridColor": "#eeeeee",
                "domainColor": "#888888",
                "tickColor": "#888888",
            },
            "header": {"labelFontSize": 12, "titleFontSize": 12},
            "legend": {
                "labelFontSize": 11,
                "titleFontSize": 12,
                "labelLimit": 320,
                "orient": "right",
            },
            "line": {"strokeWidth": 2},
            "point": {"size": 40, "filled": True},
            "area": {"opacity": 0.22},
            "bar": {"binSpacing": 1},
            "range": {"category": [*METHOD_COLOURS.values(), *SPARE_COLOURS]},
        },
    }


def enable() -> None:
    """Make the signscope theme the active one (registering it already enables it once;
    this restores it if a notebook switched themes in between)."""
    alt.theme.enable(THEME)


def to_spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The chart's Vega-Lite spec with the signscope theme applied, whatever theme is active."""
    with alt.theme.enable(THEME):
        return chart.to_dict()
