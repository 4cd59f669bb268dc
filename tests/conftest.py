"""Shared test settings, fixtures and helpers.

`make test` runs two pytest workers on two cores. PyTorch would start one thread per core in
each worker (and in every subprocess they spawn), and oversubscribed OpenMP threads spin-wait:
a tiny training run then takes 10x longer. One thread per process avoids that, and it also
fixes the thread count, which CPU bit-identity of training runs depends on.

A test that starts another process (the ``signscope`` executable, torchrun, tmux, Chromium, a
fresh interpreter, a compiler, DataLoader workers) pays for that process's start-up and
shutdown, seconds with torch. Such tests are marked ``slow``, so that ``pytest -m "not slow"``
stays a quick loop; a test that starts one without the mark fails, also when one of its
fixtures starts it.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing.process
import os
import subprocess
import time
from pathlib import Path

import pytest
from runfactory import random_run

os.environ.setdefault("OMP_NUM_THREADS", "1")


# --------------------------------------------------------------------------- slow tests

_unmarked: list[pytest.Item] = []  # the test running now, when it is not marked slow


def _refuse_in_unmarked_tests(start, describe):
    def guarded(self, *args, **kwargs):
        if _unmarked:
            raise AssertionError(
                f"{_unmarked[-1].nodeid} starts a process ({describe(self, args, kwargs)}): "
                "mark it @pytest.mark.slow, or test in-process"
            )
        return start(self, *args, **kwargs)

    return guarded


subprocess.Popen.__init__ = _refuse_in_unmarked_tests(
    subprocess.Popen.__init__, lambda _, args, kw: repr(args[0] if args else kw.get("args"))
)
multiprocessing.process.BaseProcess.start = _refuse_in_unmarked_tests(
    multiprocessing.process.BaseProcess.start, lambda process, *_: process.name
)


def _unless_slow(item: pytest.Item):
    slow = item.get_closest_marker("slow") is not None
    if not slow:
        _unmarked.append(item)
    try:
        return (yield)
    finally:
        if not slow:
            _unmarked.pop()


# Setup too: a fixture that starts a process does so for the tests that ask for it (a
# module-scoped one for whichever of them runs first).
pytest_runtest_setup = pytest.hookimpl(wrapper=True)(_unless_slow)
pytest_runtest_call = pytest.hookimpl(wrapper=True)(_unless_slow)


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="session")
def mnist1d_root(tmp_path_factory):
    """A data root holding the generated MNIST-1D arrays, generated once per test process."""
    pytest.importorskip("mnist1d")
    from trainers.mnist1d import load_arrays

    root = tmp_path_factory.mktemp("mnist1d-data")
    load_arrays(root)
    return root


# --------------------------------------------------------------------------- terminal UI


def build_demo(root: Path) -> Path:
    """Three small deterministic runs below ``root/runs``: IMP, LRR and a truncated one."""
    random_run(root / "runs" / "imp", seed=0, n_levels=4, method="imp")
    random_run(root / "runs" / "lrr", seed=1, n_levels=4, method="lrr")
    broken = random_run(root / "runs" / "zbroken", seed=2, n_levels=2, method="lrr")
    data = (broken / "level_001.safetensors").read_bytes()
    (broken / "level_001.safetensors").write_bytes(data[:-40])
    return root / "runs"


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """:func:`build_demo` in tmp_path, the working directory, so that the labels on screen
    are the stable relative ``runs/...``."""
    build_demo(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def until(pilot, condition, timeout: float = 20.0) -> None:
    """Pause until ``condition()`` holds (for states a held-back worker keeps from settling).
    The timeout only ends a test that would otherwise hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


async def settle(pilot) -> None:
    """Let discovery place the cursor, the tree cursor rest (the app waits SETTLE_S) and
    every worker finish."""
    from textual.worker import WorkerCancelled, WorkerFailed

    app = pilot.app
    await until(
        pilot,
        lambda: not app.looking and ("first screen" in app.timings or app.has_class("-empty")),
    )
    await pilot.pause(0.25)
    for _ in range(3):
        try:
            await pilot.app.workers.wait_for_complete()
        except (WorkerCancelled, WorkerFailed):  # superseded or failed work: the panes show it
            pass
        await pilot.pause()


# --------------------------------------------------------------------------- training


def tiny_mlp_train(levels: int = 2) -> list[str]:
    """``signscope train`` arguments for a run of a second or two: the demo preset's digits on
    the mlp, one epoch per level, no warmup, rewinding to the start."""
    return [
        "train",
        "--preset",
        "demo",
        "--model",
        "mlp",
        "--levels",
        str(levels),
        "--epochs",
        "1",
        "--lr-warmup-epochs",
        "0",
        "--rewind-epoch",
        "0",
    ]


# --------------------------------------------------------------------------- the TUI

SIZE = (120, 36)  # the terminal size of every Pilot test


def pilot_test(fn):
    """Run an async Pilot test on its own event loop (no pytest-asyncio needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def rows(app, table_id: str) -> list[list[str]]:
    """A DataTable's cells as text, row by row."""
    from textual.widgets import DataTable

    table = app.query_one(table_id, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
