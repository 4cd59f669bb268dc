"""``signscope report``: one offline HTML file with every figure, drawn by a real browser.

The browser test opens the report in headless Chromium (Debian's ``chromium``, installed by
``make browser``) with name resolution and proxying pointed nowhere, so any attempt to load
something from the network would fail and log an error. It checks that every figure drew an
``<svg>`` and that the page logged nothing but a canary line the test adds itself (which
proves the console is really being captured).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from runfactory import random_run

from signscope.figures import FIGURES

CANARY = "signscope-canary"
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
)
NO_NETWORK = [
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("report")
    # A name that opens an HTML comment inside the figures' JSON scripts.
    lrr = random_run(root / "lrr<!--<script>", seed=0, method="lrr", n_levels=5)
    imp = random_run(root / "imp", seed=0, method="imp", n_levels=5)
    out = root / "out" / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "signscope", "report", str(lrr), str(imp), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out, proc


@pytest.mark.slow
def test_report_cli_writes_one_self_contained_file(report):
    out, proc = report
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith(f"wrote {out} (7 of 7 figures)")
    text = out.read_text(encoding="utf-8")
    assert "<script src" not in text and "<link" not in text and "@import" not in text
    for name in FIGURES:
        assert f'data-figure="{name}"' in text and f'id="spec-{name}"' in text
    # Configs and the key tables are there too.
    assert "Config of" in text and '"seed"' not in text and ">seed<" in text
    for heading in (
        "Levels of every run",
        "Sign flips per level",
        "Mask overlap (global)",
        "Sign agreement (global)",
        "Accuracy per method",
        "BatchNorm γ at level 4",
    ):
        assert heading in text


def test_figure_json_leaves_no_markup_for_the_html_parser():
    from signscope.figures.page import figure_block

    name = "lrr<!--<script></script>"
    block = figure_block("last-flip", {"data": {"values": [{"run": name}]}})
    opening = '<script type="application/json" id="spec-last-flip">'
    spec = block[block.index(opening) + len(opening) : block.rindex("</script>")]
    # Inside a script element "<!--" and "<script" change where the element ends: no "<" at all.
    assert "<" not in spec
    assert json.loads(spec)["data"]["values"][0]["run"] == name


def test_report_lists_figures_that_cannot_be_drawn(tmp_path):
    from signscope.figures.build import FigureInputs
    from signscope.figures.report import write_report

    run = random_run(tmp_path / "lrr", n_levels=3)
    out = tmp_path / "r.html"
    figures = write_report(FigureInputs([str(run)]), out, ["mask-overlap", "bn-gamma"])
    assert [f.name for f in figures if f.chart is None] == ["mask-overlap"]
    text = out.read_text(encoding="utf-8")
    assert "Not drawn: compares two runs, got 1; give two runs or --pair A B" in text
    assert 'data-figure="bn-gamma"' in text


@pytest.mark.slow
def test_report_refuses_a_folder_and_writes_nothing_without_figures(tmp_path):
    run = random_run(tmp_path / "lrr", n_levels=2)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "signscope",
            "report",
            str(run),
            "-o",
            str(tmp_path / "r.html"),
            "--figure",
            "sign-agreement",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {tmp_path / 'r.html'}: not written: no requested figure")
    assert not (tmp_path / "r.html").exists()


class _FigureSvgs(HTMLParser):
    """Counts the ``<svg>`` elements inside each ``div[data-figure]``."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: dict[str, int] = {}
        self._current: str | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and self._current is None and "data-figure" in attrs:
            self._current, self._depth = attrs["data-figure"], 0
            self.svgs.setdefault(self._current, 0)
        elif tag == "div" and self._current is not None:
            self._depth += 1
        elif tag == "svg" and self._current is not None:
            self.svgs[self._current] += 1

    def handle_endtag(self, tag):
        if tag == "div" and self._current is not None:
            if self._depth == 0:
                self._current = None
            else:
                self._depth -= 1


def _console_messages(stderr: str) -> list[str]:
    return re.findall(r':CONSOLE[:(]\d+\)?\] "(.*)", source:', stderr)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser installs it)")
def test_report_renders_every_figure_in_chromium_offline(report, tmp_path):
    out, proc = report
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / "report.html"
    # The inlined libraries contain "</body>" in strings: add the canary before the last one.
    head, body_end, tail = out.read_text(encoding="utf-8").rpartition("</body>")
    page.write_text(
        f'{head}<script>console.log("{CANARY}")</script>{body_end}{tail}', encoding="utf-8"
    )
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *NO_NETWORK,
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=15000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert browser.returncode == 0, browser.stderr[-2000:]
    assert _console_messages(browser.stderr) == [CANARY], browser.stderr[-3000:]
    parser = _FigureSvgs()
    parser.feed(browser.stdout)
    assert parser.svgs == {name: parser.svgs.get(name, 0) for name in FIGURES}
    assert all(parser.svgs[name] >= 1 for name in FIGURES), parser.svgs
    assert browser.stdout.count('data-rendered="true"') == len(FIGURES)


def test_report_of_plain_runs_without_init_explains_what_is_missing(tmp_path):
    import numpy as np
    from runfactory import write_safetensors

    from signscope.figures.build import FigureInputs
    from signscope.figures.report import write_report

    w = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    for name in ("a", "b"):
        write_safetensors(tmp_path / name / "ckpt_1.safetensors", {"fc.weight": w})
        write_safetensors(
            tmp_path / name / "ckpt_2.safetensors", {"fc.weight": np.where(np.abs(w) < 0.5, 0, -w)}
        )
    out = tmp_path / "r.html"
    figures = {
        f.name: f
        for f in write_report(FigureInputs([str(tmp_path / "a"), str(tmp_path / "b")]), out)
    }
    assert figures["mask-overlap"].chart is not None
    assert "no init reference" in figures["last-flip"].reason
    text = out.read_text(encoding="utf-8")
    assert "Not available: " in text and "Not drawn: no run has BatchNorm layers" in text
