"""How values look in tables, the same in the CLI's and the TUI's: cells, a run's config as
key/value rows, and file names made printable. No polars here, so the TUI can show a run's
config before importing it."""

from __future__ import annotations

import json
import math
import re
from typing import Any

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
