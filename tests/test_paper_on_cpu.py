"""examples/paper_on_cpu.py: the MNIST-1D grid, its run order, the claims' verdicts, and the
whole pipeline at toy size (--smoke), run twice to show that a second call resumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import paper_claims  # noqa: E402
import paper_on_cpu  # noqa: E402
from paper_claims import FAILS, HOLDS, OPEN, Estimate, overall, verdict  # noqa: E402


def test_every_run_comes_after_the_runs_it_names(tmp_path):
    jobs = paper_on_cpu.plan(tmp_path, (0, 1, 2), "data", smoke=False)
    assert len(jobs) == 12 * 3
    position = {job.key: i for i, job in enumerate(jobs)}
    for job in jobs:
        for need in job.experiment.needs:
            assert position[need, job.seed] < position[job.key]
            assert str(tmp_path / f"{need}-seed{job.seed}") in job.argv
        assert job.argv[:3] == ("train", "--preset", "mnist1d")
        assert job.argv[-2:] == ("--resume", "--quiet")
        assert "--init-from" not in job.argv  # one seed: one init and rewind point already
    names = {job.experiment.name for job in jobs}
    figures = {n for _, runs, _, _ in paper_claims.FIGURES for n in runs}
    assert figures <= names


def test_verdicts_compare_the_intervals():
    high, low = Estimate(0.9, 0.88, 0.92), Estimate(0.8, 0.78, 0.82)
    wide = Estimate(0.85, 0.7, 1.0)
    assert verdict(high, low) == HOLDS and verdict(low, high) == FAILS
    assert verdict(high, wide) == OPEN and verdict(wide, low) == OPEN
    assert verdict(high, low, match=True) == FAILS  # apart: they do not match
    assert verdict(high, wide, match=True) == OPEN  # overlap never shows equality
    assert verdict(Estimate(0.9, None, None), low) == OPEN  # one seed has no interval
    assert overall([HOLDS, OPEN, OPEN]) == HOLDS
    assert overall([FAILS, OPEN, OPEN]) == FAILS
    assert overall([HOLDS, FAILS, OPEN]) == OPEN
    assert overall([OPEN, OPEN, OPEN]) == OPEN


@pytest.mark.torch
@pytest.mark.slow
def test_smoke_writes_the_page_and_figures_and_resumes(tmp_path, mnist1d_root):
    pytest.importorskip("torch")
    work, results = tmp_path / "runs", tmp_path / "docs" / "results.md"
    argv = ["--smoke", "--work", str(work), "--data-root", str(mnist1d_root)]
    argv += ["--results", str(results)]
    paper_on_cpu.main(argv)

    page = results.read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and "<br>" in line]
    assert len(rows) == len(paper_claims.CLAIMS)
    paired = [line for line in page.splitlines() if line.startswith("| ") and " − " in line]
    assert len(paired) == 1 + sum(c.paired for c in paper_claims.CLAIMS)  # with the header
    assert all(
        row.rstrip().endswith(("**holds** |", "**does not hold** |", "**inconclusive** |"))
        for row in rows
    )
    assert "not CIFAR" in page and "training the 24 runs took" in page and "(one call;" in page
    pngs = sorted((tmp_path / "docs" / "results").rglob("*.png"))
    assert len(pngs) == sum(len(names) for _, _, names, _ in paper_claims.FIGURES)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    for png in pngs:  # every figure the page shows exists, linked relative to the page
        assert f"(results/{png.parent.name}/{png.name})" in page

    # As if the script had been killed during one run: that run alone is trained again.
    manifest = work / "lrr+perturb-seed1" / "run.json"
    state = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**state, "complete": False}))
    (work / "lrr+perturb-seed1" / "level_001.safetensors").unlink()
    paper_on_cpu.main(argv)
    assert "(2 calls;" in results.read_text()
    assert json.loads((work / "timing.json").read_text())["runs"] == 25
    assert json.loads(manifest.read_text())["complete"] is True
