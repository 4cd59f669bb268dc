"""The paper's figures from inspection tables, drawn with Altair.

Each figure is a pure function of the polars frames of the inspection API (``signscope.api``),
already aggregated to a few rows per level, layer or value:

- :mod:`~signscope.figures.accuracy`, :mod:`~signscope.figures.flips`,
  :mod:`~signscope.figures.compare`, :mod:`~signscope.figures.bn` draw the charts;
- :mod:`~signscope.figures.theme` holds the one theme and the colour of each method;
- :mod:`~signscope.figures.build` gathers the tables from runs and draws the requested figures;
- :mod:`~signscope.figures.export` writes PNG/SVG/PDF/HTML files and
  :mod:`~signscope.figures.report` the self-contained HTML report.

Importing this package is cheap (no Altair, no polars): the CLI lists the figure names
without paying for the plotting stack. Nothing here imports torch.
"""

from __future__ import annotations

from enum import StrEnum

FIGURES: tuple[str, ...] = (
    "accuracy",
    "last-flip",
    "flip-count",
    "flips-init-diff",
    "mask-overlap",
    "bn-gamma",
    "sign-agreement",
)


class FigureFormat(StrEnum):
    """The file formats figures are written in (``export --format``, the TUI's ``e``)."""

    png = "png"
    svg = "svg"
    pdf = "pdf"
    html = "html"
