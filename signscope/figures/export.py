"""Write figures as PNG, SVG, PDF or standalone HTML, offline, through vl-convert.

vl-convert runs the Vega libraries in an embedded JavaScript runtime, so no browser and no
network are involved. HTML files inline the same libraries (:mod:`signscope.figures.vega`)
for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import altair as alt

from signscope.figures import FigureFormat
from signscope.figures.build import Figure
from signscope.figures.page import standalone_html
from signscope.figures.theme import to_spec
from signscope.figures.vega import vl_version
from signscope.runformat import atomic_write_bytes

# Twice the CSS pixel size: sharp on high-density screens and in slides, still small files.
PNG_SCALE = 2.0


def render(chart: alt.TopLevelMixin, fmt: FigureFormat | str, name: str = "figure") -> bytes:
    """The chart as the bytes of a ``fmt`` file (``name`` titles an HTML page)."""
    import vl_convert as vlc

    fmt = FigureFormat(fmt)
    spec = to_spec(chart)
    version = vl_version()
    if fmt is FigureFormat.png:
        return vlc.vegalite_to_png(spec, vl_version=version, scale=PNG_SCALE)
    if fmt is FigureFormat.svg:
        return vlc.vegalite_to_svg(spec, vl_version=version).encode("utf-8")
    if fmt is FigureFormat.pdf:
        return vlc.vegalite_to_pdf(spec, vl_version=version)
    return standalone_html(spec, name).encode("utf-8")


def write_figures(figures: Sequence[Figure], out: Path, fmt: FigureFormat | str) -> list[Path]:
    """Write each drawn figure to ``out/NAME.FMT`` (replacing an earlier export of it).

    Figures that carry a reason instead of a chart are skipped; the caller reports them.
    """
    fmt = FigureFormat(fmt)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for figure in figures:
        if figure.chart is None:
            continue
        path = out / f"{figure.name}.{fmt.value}"
        atomic_write_bytes(path, render(figure.chart, fmt, figure.name))
        written.append(path)
    return written
