"""Time the terminal UI headless: how long until the first screen, and each tab, is filled.

    python -m signscope.tui.timing bench-data/resnet50-L20-s1-seed0
    python -m signscope.tui.timing --terminal bench-data/resnet50-L20-s1-seed0

Headless (default): runs :class:`SignscopeApp` under Textual's Pilot at 120x36 and prints one
line per step with its wall and CPU time: the first screen (tree and the first run's config)
and the filled Overview (levels table and accuracy chart), both from process start, then every
tab twice, the first visit (computed in a worker) and a second one (from the cache).
``--terminal``: starts the real command in tmux and times what a user sees, from the launch.
The numbers in docs/benchmarks.md come from this command.
"""

from __future__ import annotations

import argparse
import asyncio
import time

START = time.perf_counter()

TABS = (("flips", "2"), ("layers", "3"), ("batchnorm", "4"))


Step = tuple[str, float, float | None]  # name, wall seconds, CPU seconds of this process


def _clock() -> tuple[float, float]:
    # CPU time (all threads of this process) next to wall time: on a shared, loaded machine
    # it is the better estimate of what the step costs on a quiet one.
    return time.perf_counter(), time.process_time()


async def _until(condition, timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} not shown after {timeout:.0f} s")
        await asyncio.sleep(0.005)


def _filled(app, pane_id: str):
    pane = app.query_one(f"#{pane_id}-pane")
    return lambda: pane._wanted is not None and pane._shown == pane._wanted and not pane.busy


async def measure(paths: list[str], timeout: float = 600.0) -> list[Step]:
    from signscope.tui.app import SignscopeApp

    wall, cpu = _clock()
    steps: list[Step] = [("imports (from process start)", wall - START, cpu)]
    app = SignscopeApp(paths)
    async with app.run_test(size=(120, 36)) as pilot:
        await _until(lambda: "first screen" in app.timings, timeout, "first screen")
        wall, cpu = _clock()
        steps.append(("first screen: tree + config (from process start)", wall - START, cpu))
        await _until(_filled(app, "overview"), timeout, "overview")
        wall, cpu = _clock()
        steps.append(("overview filled: levels + chart (from process start)", wall - START, cpu))
        for visit, tabs in (("first visit", TABS), ("cached", (("overview", "1"), *TABS))):
            for pane, key in tabs:
                wall0, cpu0 = _clock()
                await pilot.press(key)
                await _until(_filled(app, pane), timeout, pane)
                wall, cpu = _clock()
                steps.append((f"{pane} tab ({visit})", wall - wall0, cpu - cpu0))
    return steps


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux /proc), or None."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def measure_terminal(paths: list[str], timeout: float = 120.0) -> list[Step]:
    """``signscope tui PATHS`` in a real terminal (tmux, 120x36), timed from the launch until
    the screen shows the config, then the accuracy chart; then ``q`` until the process ends."""
    import os
    import shlex
    import shutil
    import subprocess
    import sys
    import tempfile

    if shutil.which("tmux") is None:
        raise SystemExit("--terminal needs tmux")
    tmux = ["tmux", "-L", f"signscope-timing-{os.getpid()}"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        done = os.path.join(tmp, "done")
        command = shlex.join([sys.executable, "-m", "signscope", "tui", *paths]) + f"; touch {done}"
        pid = None
        t0 = time.perf_counter()
        subprocess.run(
            [*tmux, "new-session", "-d", "-s", "t", "-x", "120", "-y", "36", command],
            check=True,
            env=env,
        )
        try:
            for name, marker in (
                ("first screen: tree + config", "levels found"),
                ("overview filled: accuracy chart", "sparsity"),
            ):
                while (
                    marker
                    not in subprocess.run(
                        [*tmux, "capture-pane", "-p", "-t", "t"], capture_output=True, text=True
                    ).stdout
                ):
                    if time.perf_counter() - t0 > timeout or os.path.exists(done):
                        raise SystemExit(f"gave up waiting for {name!r}")
                    time.sleep(0.01)
                wall = time.perf_counter() - t0
                if pid is None:  # the python process under the pane's shell
                    shell = subprocess.run(
                        [*tmux, "display", "-p", "-t", "t", "#{pane_pid}"],
                        capture_output=True,
                        text=True,
                    ).stdout.strip()
                    children = subprocess.run(
                        ["pgrep", "-P", shell], capture_output=True, text=True
                    ).stdout.split()
                    pid = int(children[0]) if children else int(shell)
                steps.append((f"{name} (terminal, from launch)", wall, _cpu_seconds(pid)))
            t1 = time.perf_counter()
            subprocess.run([*tmux, "send-keys", "-t", "t", "q"], check=True)
            while not os.path.exists(done) and time.perf_counter() - t1 < timeout:
                time.sleep(0.01)
            steps.append(("q until the process ended", time.perf_counter() - t1, None))
        finally:
            subprocess.run([*tmux, "kill-server"], capture_output=True)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=["."])
    parser.add_argument(
        "--terminal",
        action="store_true",
        help="run the real `signscope tui` in tmux instead of headless",
    )
    args = parser.parse_args()
    steps = measure_terminal(args.paths) if args.terminal else asyncio.run(measure(args.paths))
    print(f"{'step':56s} {'wall s':>8s} {'CPU s':>8s}")
    for name, wall, cpu in steps:
        print(f"{name:56s} {wall:8.3f} {'-' if cpu is None else f'{cpu:.3f}':>8s}")


if __name__ == "__main__":
    main()
