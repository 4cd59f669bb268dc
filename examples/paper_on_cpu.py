"""The paper's grid on MNIST-1D, on a CPU: every experiment of the paper's CIFAR figures that
a small 1-D problem can carry, for seeds 0, 1 and 2, then the figures and docs/results.md.

    python examples/paper_on_cpu.py            # 36 runs of the mnist1d preset, ~35 min on 2 cores
    python examples/paper_on_cpu.py --smoke    # toy size (MLP, 2 levels of 1 epoch, 2 seeds)

Per seed it trains (folder names are the method labels the runs record):

- ``imp``, ``lrr``, ``lrr+bn-rewind``: the baselines (Sec 3; Figs 3, 4, 10, 11);
- ``imp-rand``, ``lrr-rand``, ``lrr-rand+bn-rewind``: one random balanced mask (Fig 2b,c; 14a,b);
- ``imp+lrr-mask``: IMP on LRR's masks (Fig 3; 14c,d);
- ``lrr+imp-mask``, ``lrr+bn-rewind+imp-mask``: LRR on IMP's masks (Fig 4);
- ``imp+lrr-mask+lrr-sign``: IMP's rewind magnitudes with LRR's mask and signs (Fig 7c,d; 12);
- ``imp+perturb``, ``lrr+perturb``: 30% of every layer's signs flipped at level 1 (Fig 6).

Runs of one seed share their initialisation and rewind point (same seed, one thread each), so
all but the three that train on another run's masks or signs start at once. ``--workers``
runs (default: one per core, at most 4) train at a time, each ``signscope train --resume`` in
its own process: a killed script continues where it stopped when it is started again, and a
finished run is not trained twice. Then ``signscope export`` draws the figures into
``--figures`` and examples/paper_claims.py writes the results page, one row per claim.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_claims  # noqa: E402

SEEDS = (0, 1, 2)
PRESET = "mnist1d"
PERTURB = ("--perturb-signs", "0.3", "--perturb-at-level", "1")  # Fig 6: 30% at 20% sparsity
SMOKE = (
    "--model", "mlp", "--levels", "2", "--epochs", "1",
    "--lr-warmup-epochs", "0", "--rewind-epoch", "0",
)  # fmt: skip
SMOKE_SEEDS = (0, 1)


@dataclass(frozen=True)
class Experiment:
    """One run per seed: ``name`` is its folder name and the method label it records;
    ``{imp}``/``{lrr}`` in ``options`` stand for that seed's run of the experiment named."""

    name: str
    options: tuple[str, ...]

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(o[1:-1] for o in self.options if o.startswith("{"))


EXPERIMENTS = (
    Experiment("imp", ("--method", "imp")),
    Experiment("lrr", ("--method", "lrr")),
    Experiment("lrr+bn-rewind", ("--method", "lrr", "--bn-rewind")),
    Experiment("imp-rand", ("--method", "imp", "--prune", "random")),
    Experiment("lrr-rand", ("--method", "lrr", "--prune", "random")),
    Experiment("lrr-rand+bn-rewind", ("--method", "lrr", "--prune", "random", "--bn-rewind")),
    Experiment("imp+lrr-mask", ("--method", "imp", "--mask-from", "{lrr}")),
    Experiment("lrr+imp-mask", ("--method", "lrr", "--mask-from", "{imp}")),
    Experiment(
        "lrr+bn-rewind+imp-mask", ("--method", "lrr", "--bn-rewind", "--mask-from", "{imp}")
    ),
    Experiment("imp+lrr-mask+lrr-sign", ("--method", "imp", "--signs-from", "{lrr}")),
    Experiment("imp+perturb", ("--method", "imp", *PERTURB)),
    Experiment("lrr+perturb", ("--method", "lrr", *PERTURB)),
)


@dataclass(frozen=True)
class Job:
    experiment: Experiment
    seed: int
    out: Path
    argv: tuple[str, ...]

    @property
    def key(self) -> tuple[str, int]:
        return self.experiment.name, self.seed


def plan(work: Path, seeds: tuple[int, ...], data_root: str, smoke: bool) -> list[Job]:
    """Every run of the grid, the runs others depend on first."""
    jobs = []
    order = sorted(EXPERIMENTS, key=lambda e: bool(e.needs))
    for experiment in order:
        for seed in seeds:
            out = work / f"{experiment.name}-seed{seed}"
            options = [
                str(work / f"{o[1:-1]}-seed{seed}") if o.startswith("{") else o
                for o in experiment.options
            ]
            argv = ["train", "--preset", PRESET, *(SMOKE if smoke else ()), *options]
            argv += ["--seed", str(seed), "--data-root", data_root, "--out", str(out)]
            jobs.append(Job(experiment, seed, out, (*argv, "--resume", "--quiet")))
    return jobs


def finished(job: Job) -> bool:
    """A run whose run.json says complete: ``--resume`` would only confirm it."""
    try:
        manifest = json.loads((job.out / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("complete") is True


def signscope(argv: list[str] | tuple[str, ...], in_process: bool) -> None:
    """One signscope command; in-process for the smoke run (one PyTorch start for all)."""
    if in_process:
        from signscope.cli import main

        status = main(list(argv))
    else:
        # Quiet training still prints a line per level; 36 runs' worth would bury the progress
        # bar, so the output is shown only when a command fails.
        proc = subprocess.run(
            [sys.executable, "-m", "signscope", *argv], capture_output=True, text=True
        )
        status = proc.returncode
        if status != 0:
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
    if status != 0:
        raise SystemExit(f"failed (exit status {status}): signscope {shlex.join(argv)}")


def train_all(jobs: list[Job], workers: int, in_process: bool, console: Console) -> int:
    """Train the jobs, at most ``workers`` at a time, each after the runs it names; returns
    how many were trained (rather than found complete)."""
    done = {job.key for job in jobs if finished(job)}
    pending = [job for job in jobs if job.key not in done]
    trained = len(pending)
    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        Progress(*columns, console=console, transient=True) as progress,
        ThreadPoolExecutor(1 if in_process else workers) as pool,
    ):
        bar = progress.add_task("runs", total=len(jobs), completed=len(done))
        running: dict[Future, tuple[Job, float]] = {}
        while pending or running:
            for job in [j for j in pending if all((n, j.seed) in done for n in j.experiment.needs)]:
                if len(running) == (1 if in_process else workers):
                    break
                pending.remove(job)
                running[pool.submit(signscope, job.argv, in_process)] = (job, time.monotonic())
            if not running:
                raise SystemExit(f"cannot order the runs: {[j.key for j in pending]}")
            complete, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in complete:
                job, started = running.pop(future)
                future.result()
                done.add(job.key)
                progress.advance(bar)
                console.print(f"{job.out}  {time.monotonic() - started:5.0f} s")
    return trained


def record_training_time(work: Path, trained: int, seconds: float) -> dict:
    """Wall time spent training, summed over the calls that trained runs (a killed and
    restarted grid counts both calls), kept in WORK/timing.json so that the page can say how
    long the grid took even when it is written again from finished runs."""
    path = work / "timing.json"
    try:
        timing = json.loads(path.read_text())
    except (OSError, ValueError):
        timing = {"calls": 0, "runs": 0, "seconds": 0.0, "machine": machine()}
    if trained:
        timing = {
            "calls": timing["calls"] + 1,
            "runs": timing["runs"] + trained,
            "seconds": timing["seconds"] + seconds,
            "machine": machine(),
        }
        path.write_text(json.dumps(timing, indent=1) + "\n")
    return timing


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = ""
    try:
        kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if "MemTotal" in line)
        memory = f", {kb / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{platform.machine()} {platform.system()}, {cores} cores{memory}, no GPU used"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="toy size, in this process")
    parser.add_argument("--work", type=Path, help="run folders (default: runs/paper-on-cpu)")
    parser.add_argument("--data-root", default="data", help="MNIST-1D cache (default: data)")
    parser.add_argument("--results", type=Path, help="results page (default: docs/results.md)")
    parser.add_argument("--figures", type=Path, help="figures (default: RESULTS without .md)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    smoke = args.smoke
    work = args.work or Path("runs/paper-on-cpu-smoke" if smoke else "runs/paper-on-cpu")
    results = args.results or (work / "results.md" if smoke else Path("docs/results.md"))
    figures = args.figures or results.with_suffix("")
    seeds = SMOKE_SEEDS if smoke else SEEDS

    console = Console(stderr=True)
    started = time.monotonic()
    jobs = plan(work, seeds, args.data_root, smoke)
    trained = train_all(jobs, max(1, args.workers), smoke, console)
    timing = record_training_time(work, trained, time.monotonic() - started)
    runs = {job.key: job.out for job in jobs}
    for panel, names, figure_names, pair in paper_claims.FIGURES:
        if pair:
            # Pair figures compare one seed's two runs; the accuracy panels all seeds.
            chosen = [runs[(n, seeds[0])] for n in names]
        else:
            chosen = [runs[(n, s)] for n in names for s in seeds]
        argv = ["export", *map(str, chosen), "--out", str(figures / panel)]
        for name in figure_names:
            argv += ["--figure", name]
        signscope(argv, smoke)
    page = paper_claims.results_page(
        runs,
        seeds,
        figures=figures,
        relative_to=results.parent,
        command="python examples/paper_on_cpu.py" + (" --smoke" if smoke else ""),
        timing=timing,
        total=len(jobs),
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(page)
    console.print(f"wrote {results} and the figures in {figures}/")


if __name__ == "__main__":
    main()
