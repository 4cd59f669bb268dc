"""Inspection never imports torch or torchvision: neither the commands
nor the Python API, checked in a fresh interpreter each."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from runfactory import random_run

pytestmark = pytest.mark.slow  # every check runs in a fresh interpreter

_CHECK = textwrap.dedent("""
    import sys
    {body}
    heavy = sorted(m for m in ("torch", "torchvision") if m in sys.modules)
    assert not heavy, f"imported {{heavy}}"
    print("clean")
""")


def _clean(body: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK.format(body=body)], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("clean"), proc.stderr + proc.stdout


@pytest.fixture(scope="module")
def run_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("hyg")
    return random_run(root / "a", seed=1, n_levels=2), random_run(root / "b", seed=2, n_levels=2)


def test_python_api(run_pair):
    a, b = run_pair
    _clean(f"""
import signscope
assert "polars" not in sys.modules  # import signscope stays cheap
run = signscope.open_run({str(a)!r})
run.summary(); run.layers(); run.flips(per_layer=True); run.bn(); run.show()
signscope.masks(run, {str(b)!r}); signscope.signs(run, {str(b)!r}); signscope.acc([run, {str(b)!r}])
""")


def test_commands(run_pair):
    a, b = run_pair
    calls = [
        [*argv, "--format", "json"]
        for argv in (
            ["flips", str(a), "--per-layer"],
            ["masks", str(a), str(b)],
            ["signs", str(a), str(b)],
            ["bn", str(a)],
            ["acc", str(a), str(b)],
            ["show", str(a)],
        )
    ]
    _clean(f"""
import contextlib, io
from signscope.cli import main
for args in {calls!r}:
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0, args
""")
