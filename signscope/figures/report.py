"""The self-contained HTML report: every figure, the runs' configs and the key tables.

One file that opens without a network: the Vega, Vega-Lite and Vega-Embed libraries are
inlined once (vl-convert's bundle) and each figure's Vega-Lite spec sits beside them as JSON.
A figure the runs cannot make is replaced by the reason.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from signscope import __version__
from signscope.errors import SignscopeError, UsageError
from signscope.figures import FIGURES
from signscope.figures.build import Figure, FigureInputs, build
from signscope.figures.common import global_rows
from signscope.figures.page import figure_block, page
from signscope.figures.theme import to_spec
from signscope.runformat import atomic_write_text

MAX_TABLE_ROWS = 400


def _cell(value: Any) -> tuple[str, bool]:
    if value is None:
        return "—", False
    if isinstance(value, bool):
        return str(value).lower(), False
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value), True
        return (
            f"{value:.4g}" if value != int(value) or abs(value) >= 1e6 else f"{value:.1f}"
        ), True
    if isinstance(value, int):
        return f"{value:,}", True
    return str(value), False


def html_table(frame: pl.DataFrame, limit: int = MAX_TABLE_ROWS) -> str:
    """A plain HTML table of ``frame`` (at most ``limit`` rows, with a note when cut)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.head(limit).iter_rows():
        cells = []
        for value in row:
            text, numeric = _cell(value)
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="note">{frame.height - limit:,} more rows not shown; '
        "use the matching <code>signscope</code> command for all of them.</p>"
        if frame.height > limit
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _figure_section(figure: Figure) -> str:
    title = f'<h3 id="fig-{figure.name}">{html.escape(figure.name)}</h3>'
    if figure.chart is None:
        return f'{title}<p class="unavailable">Not drawn: {html.escape(figure.reason or "")}</p>'
    return title + figure_block(figure.name, to_spec(figure.chart))


def _concat(frames) -> pl.DataFrame:
    return pl.concat(list(frames), how="vertical_relaxed")


def _tables(inputs: FigureInputs) -> list[tuple[str, Callable[[], pl.DataFrame]]]:
    """The key tables, in reading order, each computed when the page is assembled."""
    tables = [
        ("Levels of every run", lambda: _concat(r.summary() for r in inputs.runs)),
        (
            "Sign flips per level (flips_prev, flips_init)",
            lambda: _concat(global_rows(inputs.flips(r, None)["levels"]) for r in inputs.runs),
        ),
    ]
    if inputs.pair is not None:
        tables.append(("Mask overlap (global)", lambda: global_rows(inputs.masks)))
        tables.append(("Sign agreement (global)", lambda: global_rows(inputs.signs)))
    tables.append(("Accuracy per method", lambda: inputs.accuracy["accuracy"]))
    tables.append((f"BatchNorm γ at level {inputs.level}", lambda: inputs.bn))
    return tables


def _table_section(title: str, make: Callable[[], pl.DataFrame]) -> str:
    """A heading and its table; a table these runs cannot give says why, like a figure."""
    try:
        frame = make()
    except SignscopeError as exc:
        reason = html.escape(str(exc))
        return f'<h3>{html.escape(title)}</h3><p class="unavailable">Not available: {reason}</p>'
    if frame.is_empty():
        return f'<h3>{html.escape(title)}</h3><p class="note">Nothing to show for these runs.</p>'
    return f"<h3>{html.escape(title)}</h3>{html_table(frame)}"


def _runs_section(inputs: FigureInputs) -> str:
    overview = pl.DataFrame(
        [
            {
                "run": r.label,
                "method": r.method,
                "kind": r.kind,
                "levels": len(r.levels),
                "path": str(r.path),
            }
            for r in inputs.runs
        ],
        schema={
            "run": pl.String,
            "method": pl.String,
            "kind": pl.String,
            "levels": pl.Int64,
            "path": pl.String,
        },
    )
    parts = ['<h2 id="runs">Runs</h2>', html_table(overview)]
    if inputs.pair is not None:
        a, b = inputs.pair
        parts.append(
            f'<p class="note">Pair figures compare A = <code>{html.escape(a.label)}'
            f"</code> with B = <code>{html.escape(b.label)}</code>.</p>"
        )
    for run in inputs.runs:
        config = run.show()["config"]
        parts.append(f"<h3>Config of <code>{html.escape(run.label)}</code></h3>")
        parts.append(
            html_table(config)
            if config.height
            else '<p class="note">No config recorded (plain run).</p>'
        )
    return "".join(parts)


def report_html(inputs: FigureInputs, figures: Sequence[Figure]) -> str:
    """The report page around ``figures`` (drawn, or with their reasons; see ``build``)."""
    nav = "".join(f'<a href="#fig-{f.name}">{f.name}</a>' for f in figures)
    tables = "".join(_table_section(title, make) for title, make in _tables(inputs))
    body = f"""<h1>signscope report</h1>
<p class="note">Figures and tables of {len(inputs.runs)} run(s), computed by signscope
{__version__} (<i>Masks, Signs, And Learning Rate Rewinding</i>, Gadhikar &amp; Burkholz,
ICLR 2024). Single-level figures use level {inputs.level}. Hover over a mark for its numbers.</p>
<nav>{nav}</nav>
<h2 id="figures">Figures</h2>
{"".join(_figure_section(f) for f in figures)}
{_runs_section(inputs)}
<h2 id="tables">Tables</h2>
{tables}"""
    return page("signscope report", body)


def write_report(inputs: FigureInputs, out: Path, names: Sequence[str] = FIGURES) -> list[Figure]:
    """Write the report to ``out`` (replacing an earlier report there) and return its figures.

    Nothing is written when none of the requested figures can be drawn.
    """
    if out.is_dir():
        raise UsageError(
            f"--out {out}: is a folder; give the report's file name, e.g. {out / 'report.html'}"
        )
    figures = build(inputs, names)
    if all(f.chart is None for f in figures):
        reasons = "; ".join(f"{f.name}: {f.reason}" for f in figures)
        raise SignscopeError(f"{out}: not written: no requested figure can be drawn ({reasons})")
    text = report_html(inputs, figures)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    return figures
