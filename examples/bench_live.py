"""Time the TUI's live monitoring: one poll over 200 runs, and a level landing to the tree.

    python examples/bench_live.py                      # 200 runs of 20 levels, 5 repeats
    python examples/bench_live.py --runs 20 --repeat 3  # quick iteration

Step 1 writes (once; kept and reused under ``--dir``) ``--runs`` signscope runs in 10 folders,
one per (dataset, model) setup, each run with 20 levels, init and rewind, a ``run.json`` and a
``metrics.jsonl`` of 20 x 150 epochs. The checkpoints hold the tensor names of a CIFAR-100
ResNet50 (its 54 prunable tensors with masks, 374 header entries, so discovery parses headers
of a real run's length) with the first dimension cut to 2%, and their data is a sparse hole
of zeros: the Overview's alive counts then read little. All runs but ``zz/training`` (at
level 5, written afresh each time) are complete. Folder mtimes are set an hour back, as for
runs written earlier.

Step 2 times, in this process, on CPU (the poll thread's ``thread_time``) and wall clock:
- ``discover()``: a first discovery, what ``r`` does, every header read;
- a poll with nothing changed (the steady state: three stats per run);
- a poll after one epoch line was appended to the training run;
- a poll after one level file landed in it (one folder listed, one header read);
- a poll when no folder listing can be trusted (every one changed within the last 2 s).

Step 3 starts the app headless (Textual's Pilot, 120x36, the default 1 s poll) on the same
folder and, once its first Overview is filled, lands ``--landings`` level files of the
training run at random moments, timing each from the rename that completes it until the tree
holds the new level's node (Textual paints it at its next frame, at most 1/60 s later).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The ResNet50 state dict and the header writer of the inspection benchmark.
from bench_inspect import _header_bytes, _layout, resnet50_state, scaled  # noqa: E402

from signscope.runformat import (  # noqa: E402
    FORMAT,
    METRICS,
    atomic_append_line,
    atomic_write_bytes,
    level_filename,
    write_manifest,
)

LEVELS = 20
EPOCHS = 150
GROUPS = 10
SCALE = 0.02


def _checkpoint(path: Path, metadata: dict, masks: bool) -> None:
    """A file with a real ResNet50 header whose data is a hole (never read by a poll)."""
    header, _ = _layout(scaled(resnet50_state(), SCALE), masks)
    head = _header_bytes(header, metadata)
    size = len(head) + max(e["data_offsets"][1] for e in header.values())
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    os.replace(tmp, path)


def _level(run: Path, level: int) -> None:
    meta = {"format": FORMAT, "level": str(level), "density": repr(0.8**level), "method": "lrr"}
    _checkpoint(run / level_filename(level), meta, masks=True)


def _epoch_line(level: int, epoch: int) -> str:
    record = {"level": level, "epoch": epoch, "lr": 0.1, "train_loss": 1.0 / epoch}
    record.update(train_acc=0.9, test_acc=0.8 if epoch == EPOCHS else None, seconds=21.5)
    return json.dumps(record)


def _config(group: str, seed: int) -> dict:
    # Each folder is a setup of its own, so that the Overview compares the runs of one folder.
    config = {"method": "lrr", "seed": seed, "model": "resnet50", "dataset": group}
    return config | {"levels": LEVELS, "epochs": EPOCHS}


def synthesize(root: Path, n_runs: int) -> Path:
    """``n_runs - 1`` complete runs (kept for the next time) and one in training, at level 5
    (written afresh); returns the training run."""
    training = root / "zz" / "training"
    if training.exists():
        for path in training.iterdir():
            path.unlink()
    made = root / ".complete-runs-written"
    per_group = -(-(n_runs - 1) // GROUPS)
    folders = [
        root / f"group{g:02d}" / f"lrr-seed{s}" for g in range(GROUPS) for s in range(per_group)
    ][: n_runs - 1]
    log = "".join(_epoch_line(lvl, e) + "\n" for lvl in range(LEVELS) for e in range(1, EPOCHS + 1))
    for run in [training] if made.exists() else [*folders, training]:
        run.mkdir(parents=True, exist_ok=True)
        for kind in ("init", "rewind"):
            _checkpoint(run / f"{kind}.safetensors", {"format": FORMAT, "kind": kind}, False)
        done = LEVELS if run != training else 5
        for lvl in range(done):
            _level(run, lvl)
        summary = [{"level": lvl, "density": 0.8**lvl, "test_acc": 0.7} for lvl in range(done)]
        seed = int(run.name.rsplit("seed", 1)[-1]) if "seed" in run.name else 0
        write_manifest(run, _config(run.parent.name, seed), summary, complete=run != training)
        lines = log if run != training else log[: log.index(_epoch_line(done, 1))]
        atomic_write_bytes(run / METRICS, lines.encode())
    made.touch()
    return training


def age_folders(root: Path, seconds: float = 3600.0) -> None:
    then = time.time() - seconds
    for dirpath, _, _ in os.walk(root):
        os.utime(dirpath, (then, then))


def _timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.thread_time()
    result = fn()
    return time.perf_counter() - wall, time.thread_time() - cpu, result


def _row(name: str, samples: list[tuple[float, float]]) -> str:
    walls = [w * 1e3 for w, _ in samples]
    cpus = [c * 1e3 for _, c in samples]
    return (
        f"| {name} | {statistics.median(walls):.1f} ms | {statistics.median(cpus):.1f} ms "
        f"| {min(walls):.1f}-{max(walls):.1f} ms |"
    )


def measure_polls(root: Path, training: Path, repeat: int) -> list[str]:
    import signscope.discover as discover_module
    from signscope.discover import Watcher, discover

    rows = []
    first = [_timed(lambda: discover([root]))[:2] for _ in range(repeat)]
    n = len(discover([root]).runs)
    rows.append(_row(f"`discover()` of {n} runs (first poll, every header)", first))
    age_folders(root)
    watcher = Watcher([root])
    watcher.poll()
    quiet = [_timed(watcher.poll)[:2] for _ in range(max(5, 5 * repeat))]
    rows.append(_row("poll, nothing changed", quiet))
    epoch, level = [], []
    next_level = len(list(training.glob("level_*.safetensors")))
    for _ in range(repeat):
        atomic_append_line(training / METRICS, _epoch_line(next_level, 1))
        epoch.append(_timed(watcher.poll)[:2])
        age_folders(training.parent)
        _level(training, next_level)
        next_level += 1
        headers = watcher.headers_read
        level.append(_timed(watcher.poll)[:2])
        assert watcher.headers_read == headers + 1, "a landing must read one header"
        age_folders(training.parent)
    rows.append(_row("poll after one epoch line was appended", epoch))
    rows.append(_row("poll after one level file landed", level))
    # As if every folder had changed within the last 2 s, so that no listing can be trusted
    # (trust is decided when a folder is listed, hence a new watcher).
    racy_ns, discover_module._RACY_NS = discover_module._RACY_NS, 10**18
    try:
        watcher = Watcher([root])
        watcher.poll()
        racy = [_timed(watcher.poll)[:2] for _ in range(repeat)]
    finally:
        discover_module._RACY_NS = racy_ns
    rows.append(_row("poll listing every folder again (all changed < 2 s ago)", racy))
    return rows


async def measure_landing(root: Path, training: Path, landings: int, seed: int) -> list[float]:
    from signscope.tui.app import SignscopeApp
    from signscope.tui.runtree import RunTree

    rng = random.Random(seed)
    app = SignscopeApp([str(root)])
    latencies = []
    async with app.run_test(size=(120, 36)) as pilot:
        # Landings start once the first Overview (alive counts of a folder's runs) is filled.
        deadline = time.monotonic() + 600
        while "overview filled" not in app.timings and time.monotonic() < deadline:
            await pilot.pause(0.05)
        tree = app.query_one("#tree", RunTree)
        label = next(r.label for r in app.runs.values() if r.path == training)

        def levels_shown() -> int:
            node = next(n for n in tree.root.children if n.data.label == label)
            return sum(1 for c in node.children if c.data.level is not None)

        await pilot.pause(1.0)
        for _ in range(landings):
            await asyncio.sleep(rng.uniform(0.2, 1.2))  # land at any phase of the poll timer
            shown = levels_shown()
            level = len(list(training.glob("level_*.safetensors")))
            await asyncio.to_thread(_level, training, level)
            landed = time.perf_counter()
            while levels_shown() == shown:
                if time.perf_counter() - landed > 30:
                    raise SystemExit("the level did not show within 30 s")
                await asyncio.sleep(0.002)
            latencies.append(time.perf_counter() - landed)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("bench-data/live"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--landings", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = args.dir / f"runs{args.runs}"
    t0 = time.perf_counter()
    training = synthesize(root, args.runs)
    print(f"runs under {root} ready in {time.perf_counter() - t0:.1f} s")
    print("| what | wall median | CPU median | wall range |\n| --- | --- | --- | --- |")
    for row in measure_polls(root, training, args.repeat):
        print(row)
    age_folders(root)
    latencies = asyncio.run(measure_landing(root, training, args.landings, args.seed))
    ms = sorted(x * 1e3 for x in latencies)
    print(
        f"\nlevel landing -> tree, {len(ms)} landings: median {statistics.median(ms):.0f} ms, "
        f"min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms"
    )
    print("all:", " ".join(f"{x:.0f}" for x in ms))


if __name__ == "__main__":
    main()
