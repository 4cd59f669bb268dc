"""How values look, the same in the CLI, the TUI and the figures: table cells, a run's config
as key/value rows, file names made printable, sparsity as text and each method's colour.
No polars and no Altair here, so the TUI can show a run before importing either."""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any

# Colours are part of the figures' and charts' meaning: IMP is always blue and LRR always
# orange, so a reader can compare them at a glance. Tableau-10 colours: distinguishable in
# print and for the common colour-vision deficiencies.
METHOD_COLOURS: dict[str, str] = {
    "imp": "#4c78a8",
    "lrr": "#f58518",
    "lrr+bn-rewind": "#54a24b",
    "imp-rand": "#9ecae9",
    "lrr-rand": "#ffbf79",
    "lrr-rand+bn-rewind": "#88d27a",
}
SPARE_COLOURS = ("#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#eeca3b", "#79706e")
UNKNOWN_METHOD = "unknown"
UNKNOWN_COLOUR = "#bab0ac"


def method_colour(method: str | None) -> str:
    """The colour of ``method``: fixed for known methods; otherwise a spare colour chosen by
    a stable hash of the name, so a method keeps its colour from one export to the next."""
    if method is None or method == UNKNOWN_METHOD:
        return UNKNOWN_COLOUR
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    return SPARE_COLOURS[zlib.crc32(method.encode("utf-8")) % len(SPARE_COLOURS)]


def rgb(hex_colour: str) -> tuple[int, int, int]:
    """``#4c78a8`` -> ``(76, 120, 168)``."""
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def sparsity_text(density: float | None) -> str:
    """``0.8**3`` -> ``"48.8%"``: three significant digits, like the paper's axis labels;
    ``?`` when the density is not known."""
    if density is None:
        return "?"
    s = 100.0 * (1.0 - float(density))
    if abs(s) < 1e-9:
        return "0%"
    return f"{s:.3g}%" if s < 99.95 else f"{s:.4g}%"


# Python keeps each byte of a file name that is not valid UTF-8 as a lone surrogate
# (PEP 383), which no UTF-8 stream, JSON encoder or Arrow string can hold.
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with each undecodable byte of a file name shown as U+FFFD, so it can be
    printed and stored; open files by the original string, which keeps the bytes."""
    return _SURROGATE.sub("\ufffd", text)


def literal(text: str) -> str:
    """``text`` for a place that reads console markup, shown as it is: printable, and with
    anything that looks like a markup tag ("imp[seed1]", "[/x]") escaped."""
    from rich.markup import escape

    return escape(printable(text))


def format_cell(value: Any) -> str:
    """One table cell as people read it: — for missing, 4 significant decimals, e-notation
    for very small or large numbers."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3e}"
        if value == int(value):
            return f"{value:.1f}"
        # Four decimals, but never round a fraction like 0.99995 to a misleading "1".
        digits = 4
        text = f"{value:.{digits}f}"
        while float(text) == round(value) and digits < 12:
            digits += 1
            text = f"{value:.{digits}f}"
        return text.rstrip("0").rstrip(".")
    return str(value)


def config_items(config: dict) -> list[tuple[str, str]]:
    """A run's config as (key, value) rows: nested keys dotted, values JSON unless strings."""
    return list(_flatten(config)) if config else []


def _flatten(obj, prefix: str = ""):
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], obj if isinstance(obj, str) else json.dumps(obj)
