"""The HTML page around figures: inlined Vega libraries, styles and the embedding script.

Used by the report and by ``export --format html``, so both open offline the same way: the
libraries sit in the page, each figure's Vega-Lite spec is a JSON script element, and a few
lines of script draw every figure once the page has loaded.
"""

from __future__ import annotations

import html
import json
from typing import Any

from signscope import __version__
from signscope.figures.vega import javascript_bundle

CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05rem; }
nav a { margin-right: 0.9rem; }
.figure { margin: 1rem 0 2rem; overflow-x: auto; }
.unavailable { color: #8a5a00; background: #fff6e0; padding: 0.5rem 0.8rem; border-radius: 4px; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1.2rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f4f4f4; padding: 0 0.2rem; }
.note { color: #555; font-size: 0.9rem; }
"""

# A failure is shown in place of the figure and logged, so it can neither pass unseen nor
# stop the other figures from drawing.
EMBED = """
for (const el of document.querySelectorAll("div[data-figure]")) {
  const spec = JSON.parse(document.getElementById("spec-" + el.dataset.figure).textContent);
  vegaEmbed(el, spec, {actions: false, renderer: "svg"})
    .then(() => { el.dataset.rendered = "true"; })
    .catch((err) => { el.textContent = "could not draw this figure: " + err; console.error(err); });
}
"""


def script_json(obj: Any) -> str:
    """JSON for a ``<script>`` element. Inside one, ``</script`` ends the element and ``<!--``
    starts an escaped state in which the next ``</script>`` no longer does, so a run named
    ``<!--<script>`` would swallow the rest of the page. ``\\u003c`` is ``<`` to a JSON parser
    and means nothing to the HTML one, so no ``<`` is left for it to read."""
    return json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c")


def figure_block(name: str, spec: dict[str, Any]) -> str:
    """The element a figure is drawn into, followed by its spec."""
    return (
        f'<div class="figure" data-figure="{html.escape(name)}"></div>'
        f'<script type="application/json" id="spec-{html.escape(name)}">'
        f"{script_json(spec)}</script>"
    )


def page(title: str, body: str) -> str:
    """A complete HTML document around ``body`` with the Vega libraries inlined."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="signscope {__version__}">
<title>{html.escape(title)}</title>
<style>{CSS}</style>
<script>{javascript_bundle()}</script>
</head>
<body>
{body}
<script>{EMBED}</script>
</body>
</html>
"""


def standalone_html(spec: dict[str, Any], name: str = "figure") -> str:
    """One figure as an offline HTML page."""
    return page(f"signscope: {name}", figure_block(name, spec))
