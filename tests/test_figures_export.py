"""``signscope export``: real image files from toy runs, and clear messages for the figures
that cannot be drawn. Most cases run the CLI in a subprocess, as users do."""

from __future__ import annotations

import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from runfactory import random_run, write_run

from signscope.figures import FIGURES
from signscope.figures.build import FigureInputs, build


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "lrr": random_run(root / "lrr", seed=0, method="lrr", n_levels=5),
        "imp": random_run(root / "imp", seed=0, method="imp", n_levels=5),
        "lrr1": random_run(root / "lrr1", seed=1, method="lrr", n_levels=4),
        "wide": random_run(
            root / "wide",
            seed=0,
            method="imp",
            n_levels=3,
            shapes={"conv1.weight": (8, 1, 3, 3), "fc.weight": (10, 16)},
        ),
        "nobn": _run_without_batchnorm(root / "nobn"),
    }


def _run_without_batchnorm(path: Path) -> Path:
    rng = np.random.default_rng(3)
    init = {"fc.weight": rng.normal(size=(6, 5)).astype(np.float32)}
    levels = [{"fc.weight": init["fc.weight"] + 0.1}, {"fc.weight": -init["fc.weight"]}]
    masks = [{"fc.weight": np.ones((6, 5), bool)}, {"fc.weight": np.abs(init["fc.weight"]) > 0.5}]
    return write_run(path, levels, init, masks=masks, method="lrr", test_acc=[0.5, 0.4])


def signscope(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signscope", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def svg_size(data: bytes) -> tuple[float, float]:
    root = ET.fromstring(data)
    assert root.tag.endswith("svg")
    return float(root.get("width")), float(root.get("height"))


# ---------------------------------------------------------------- CLI, subprocess
@pytest.mark.slow
def test_export_writes_every_figure_as_png(runs, tmp_path):
    out = tmp_path / "figs"
    proc = signscope("export", runs["lrr"], runs["imp"], "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in FIGURES)
    for name in FIGURES:
        width, height = png_size((out / f"{name}.png").read_bytes())
        # 2x scale of charts a few hundred CSS pixels wide: neither empty nor absurd.
        assert 300 <= width <= 5000 and 200 <= height <= 4000, (name, width, height)
    assert "wrote" in proc.stderr and "skipped" not in proc.stderr


@pytest.mark.slow
def test_export_one_run_skips_pair_figures_with_a_reason(runs, tmp_path):
    out = tmp_path / "svg"
    proc = signscope(
        "export",
        runs["lrr"],
        "-o",
        out,
        "--format",
        "svg",
        "--figure",
        "mask-overlap",
        "--figure",
        "bn-gamma",
        "--figure",
        "last-flip",
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "skipped mask-overlap: compares two runs, got 1; give two runs or --pair A B" in proc.stderr
    )
    assert sorted(p.name for p in out.iterdir()) == ["bn-gamma.svg", "last-flip.svg"]
    for p in out.iterdir():
        width, height = svg_size(p.read_bytes())
        assert width > 150 and height > 150


@pytest.mark.slow
def test_export_fails_when_no_requested_figure_can_be_drawn(runs, tmp_path):
    proc = signscope("export", runs["nobn"], "-o", tmp_path / "x", "--figure", "bn-gamma")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "skipped bn-gamma: no run has BatchNorm layers"
    assert lines[-1].startswith("error: no figure written")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


@pytest.mark.slow
def test_export_usage_errors(runs, tmp_path):
    proc = signscope("export", runs["lrr"], "-o", tmp_path, "--level", "9")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: --level 9: {runs['lrr']} has levels 0..4"


def test_unknown_figure_name_is_a_usage_error(tmp_path, capsys):
    from signscope.cli import main

    assert main(["export", "run", "-o", str(tmp_path), "--figure", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'nope' is not one of 'accuracy', 'last-flip'" in err


# ---------------------------------------------------------------- in process
def test_pdf_and_html_formats(runs, tmp_path):
    from signscope.figures.export import write_figures

    inputs = FigureInputs([str(runs["lrr"]), str(runs["imp"])])
    figures = build(inputs, ["sign-agreement"])
    (pdf,) = write_figures(figures, tmp_path, "pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2000
    (page,) = write_figures(figures, tmp_path, "html")
    text = page.read_text()
    # Offline: the libraries are inline and nothing is loaded from elsewhere.
    assert "vegaEmbed" in text and "<script src" not in text and "<link" not in text
    assert 'data-figure="sign-agreement"' in text


def test_mismatched_pair_skips_only_pair_figures(runs):
    inputs = FigureInputs([str(runs["lrr"]), str(runs["wide"])])
    figures = {f.name: f for f in build(inputs, FIGURES)}
    assert figures["mask-overlap"].chart is None
    assert (
        "conv1.weight" in figures["mask-overlap"].reason
        or "architect" in figures["mask-overlap"].reason
    )
    assert figures["bn-gamma"].chart is not None and figures["last-flip"].chart is not None


def test_pair_option_and_default_level(runs):
    paths = [str(runs[k]) for k in ("lrr", "imp", "lrr1")]
    inputs = FigureInputs(paths, pair=[paths[2], paths[1]])
    assert [r.label for r in inputs.pair] == [paths[2], paths[1]]
    assert inputs.pair[0] is inputs.runs[2]
    # lrr1 has levels 0..3: single-level figures compare all runs at level 3.
    assert inputs.level == 3
    assert set(inputs.bn["level"].to_list()) == {3}
    only_pair = FigureInputs([], pair=[paths[0], paths[1]])
    assert [r.label for r in only_pair.runs] == paths[:2]


def test_figures_never_receive_per_weight_rows(runs):
    from signscope.figures.theme import to_spec

    inputs = FigureInputs([str(runs["lrr"]), str(runs["imp"])])
    n_weights = 4 * 9 + 10 * 16
    for figure in build(inputs, FIGURES):
        spec = to_spec(figure.chart)
        biggest = max(len(rows) for rows in spec.get("datasets", {"": []}).values())
        assert biggest < n_weights, figure.name
