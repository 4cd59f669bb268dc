"""The Vega, Vega-Lite and Vega-Embed JavaScript that offline HTML files inline.

vl-convert builds this bundle on request, which takes about 12 s of CPU the first time in a
process. The result depends only on the vl-convert release and the Vega-Lite version, so it
is kept in a cache folder and later ``report``/``export --format html`` calls reuse it:
``$SIGNSCOPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/signscope``, else ``~/.cache/signscope``.
A cache that cannot be read or written is skipped silently; the bundle is then rebuilt.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import altair as alt

from signscope.runformat import atomic_write_text

# A real bundle is about 900 kB; anything much smaller is a truncated or foreign file.
_MIN_BUNDLE = 100_000


@cache
def vl_version() -> str | None:
    """The Vega-Lite version Altair writes specs for, when vl-convert bundles it."""
    import vl_convert as vlc

    major_minor = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return major_minor if major_minor in vlc.get_vegalite_versions() else None


def cache_dir() -> Path:
    explicit = os.environ.get("SIGNSCOPE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "signscope"


@cache
def javascript_bundle() -> str:
    """One script that defines ``vega``, ``vegaLite`` and ``vegaEmbed`` on ``window``."""
    import vl_convert as vlc

    path = cache_dir() / f"vega-bundle-vlc{vlc.__version__}-vl{vl_version() or 'latest'}.js"
    try:
        text = path.read_text(encoding="utf-8")
        if len(text) >= _MIN_BUNDLE:
            return text
    except (OSError, UnicodeDecodeError):
        pass
    text = vlc.javascript_bundle(vl_version=vl_version())
    if "</script" in text.lower():
        raise RuntimeError("the Vega bundle contains '</script' and cannot be inlined in HTML")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError:
        pass
    return text
