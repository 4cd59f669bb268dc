"""Time ``signscope flips`` on a ResNet50-sized run against a straightforward numpy version.

    python examples/bench_inspect.py                       # 20 levels, full size (~2.5 GB)
    python examples/bench_inspect.py --levels 4 --scale 0.1 --repeat 1   # quick iteration

Step 1 synthesizes (seeded, streaming: one chunk of every file at a time) a 20-level run with
the state dict of a CIFAR-100 ResNet50 (23.7M prunable weights in 54 conv/linear tensors,
fp32, with uint8 masks, init and rewind) under ``--dir``; it is kept and reused while the
parameters match. Masks are nested (density 0.8^L per level) and the surviving weights drift
level by level with a shrinking step, so signs flip often early and rarely late, as in LRR.

Step 2 warms the page cache, then times, each in its own subprocess with its peak RSS:
- ``signscope flips DIR --format json`` end to end (all three tables);
- the baseline: per level, load every tensor with ``safetensors.safe_open(framework="np")``
  and count flips with ``np.sign`` products against the previous level and init (only the
  ``levels`` table).
Both must give the same ``levels`` table. Results go to stdout as a small report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20


# --------------------------------------------------------------------------- the model


def resnet50_state(num_classes: int = 100) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, dtype, shape) of a CIFAR ResNet50 state dict (3x3 stem, no max-pool), in
    PyTorch order."""
    out: list[tuple[str, str, tuple[int, ...]]] = []

    def bn(prefix: str, c: int) -> None:
        out.extend(
            [
                (f"{prefix}.weight", "F32", (c,)),
                (f"{prefix}.bias", "F32", (c,)),
                (f"{prefix}.running_mean", "F32", (c,)),
                (f"{prefix}.running_var", "F32", (c,)),
                (f"{prefix}.num_batches_tracked", "I64", ()),
            ]
        )

    out.append(("conv1.weight", "F32", (64, 3, 3, 3)))
    bn("bn1", 64)
    inplanes = 64
    for i, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"layer{i}.{b}"
            out.append((f"{p}.conv1.weight", "F32", (width, inplanes, 1, 1)))
            bn(f"{p}.bn1", width)
            out.append((f"{p}.conv2.weight", "F32", (width, width, 3, 3)))
            bn(f"{p}.bn2", width)
            out.append((f"{p}.conv3.weight", "F32", (width * 4, width, 1, 1)))
            bn(f"{p}.bn3", width * 4)
            if b == 0:
                out.append((f"{p}.downsample.0.weight", "F32", (width * 4, inplanes, 1, 1)))
                bn(f"{p}.downsample.1", width * 4)
            inplanes = width * 4
    out.append(("fc.weight", "F32", (num_classes, 2048)))
    out.append(("fc.bias", "F32", (num_classes,)))
    return out


def scaled(state, scale: float):
    """Shrink every prunable tensor's first dim by ``scale`` (for quick runs)."""
    if scale >= 1:
        return state
    return [
        (n, d, ((max(1, int(s[0] * scale)),) + s[1:]) if len(s) >= 2 else s) for n, d, s in state
    ]


def prunable(state) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, s) for n, _, s in state if len(s) >= 2]


# --------------------------------------------------------------------------- synthesis

_SIZE = {"F32": 4, "I64": 8, "U8": 1}


def _layout(state, with_masks: bool) -> tuple[bytes, dict[str, int]]:
    """Header bytes and the absolute data offset of every tensor."""
    entries = [(n, d, s) for n, d, s in state]
    if with_masks:
        entries += [(f"mask/{n}", "U8", s) for n, s in prunable(state)]
    header, offsets, pos = {}, {}, 0
    for name, dtype, shape in entries:
        nbytes = int(np.prod(shape, dtype=np.int64)) * _SIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
        offsets[name] = pos
        pos += nbytes
    return header, offsets


def _header_bytes(header: dict, metadata: dict) -> bytes:
    head = json.dumps({"__metadata__": metadata, **header}, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head


def synthesize(folder: Path, n_levels: int, scale: float, seed: int) -> None:
    """Write the run; all files are filled chunk by chunk, in parallel, through pwrite."""
    state = scaled(resnet50_state(), scale)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "init": (False, {"format": "signscope/1", "kind": "init"}),
        "rewind": (False, {"format": "signscope/1", "kind": "rewind"}),
    }
    n_prunable = sum(int(np.prod(s)) for _, s in prunable(state))
    for lvl in range(n_levels):
        files[f"level_{lvl:03d}"] = (
            True,
            {
                "format": "signscope/1",
                "level": str(lvl),
                "density": repr(0.8**lvl),
                "method": "lrr",
                "test_acc": repr(0.78 - 0.002 * lvl),
            },
        )
    fds, bases, offsets = {}, {}, {}
    for key, (masked, meta) in files.items():
        header, offs = _layout(state, masked)
        head = _header_bytes(header, meta)
        tmp = folder / f".{key}.safetensors.tmp"
        fds[key] = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(fds[key], head, 0)
        bases[key], offsets[key] = len(head), offs
    rng_small = np.random.default_rng(seed)
    levels = [f"level_{lvl:03d}" for lvl in range(n_levels)]
    for t, (name, dtype, shape) in enumerate(state):
        numel = int(np.prod(shape, dtype=np.int64))
        if len(shape) < 2:
            for key in files:
                if dtype == "I64":
                    data = np.array(1000, "<i8").tobytes()
                elif name.endswith(".weight"):
                    data = rng_small.normal(0.5, 0.3, numel).astype("<f4").tobytes()
                else:
                    data = rng_small.normal(0, 0.1, numel).astype("<f4").tobytes()
                os.pwrite(fds[key], data, bases[key] + offsets[key][name])
            continue
        std = np.float32(np.sqrt(2.0 / (numel // shape[0])))
        for c, start in enumerate(range(0, numel, CHUNK)):
            n = min(CHUNK, numel - start)
            rng = np.random.default_rng([seed, t, c])
            w = rng.standard_normal(n, dtype=np.float32) * std
            keep = rng.random(n, dtype=np.float32)  # alive at level L while keep < 0.8^L
            for key, arr in (
                ("init", w),
                ("rewind", w + rng.standard_normal(n, dtype=np.float32) * (0.05 * std)),
            ):
                os.pwrite(
                    fds[key],
                    arr.astype("<f4").tobytes(),
                    bases[key] + offsets[key][name] + 4 * start,
                )
            for lvl, key in enumerate(levels):
                w = w + rng.standard_normal(n, dtype=np.float32) * (std * 0.8 * 0.75**lvl)
                alive = keep < 0.8**lvl
                os.pwrite(
                    fds[key],
                    np.where(alive, w, np.float32(0)).astype("<f4").tobytes(),
                    bases[key] + offsets[key][name] + 4 * start,
                )
                os.pwrite(
                    fds[key],
                    alive.astype(np.uint8).tobytes(),
                    bases[key] + offsets[key][f"mask/{name}"] + start,
                )
    for key, fd in fds.items():
        os.fsync(fd)
        os.close(fd)
        os.replace(folder / f".{key}.safetensors.tmp", folder / f"{key}.safetensors")
    config = {
        "method": "lrr",
        "seed": seed,
        "model": "resnet50",
        "dataset": "cifar100",
        "levels": n_levels,
        "bench_scale": scale,
    }
    manifest = {
        "format": "signscope/1",
        "format_version": 1,
        "config": config,
        "levels": [{"level": lvl, "density": 0.8**lvl} for lvl in range(n_levels)],
        "complete": True,
        "prunable": n_prunable,
    }
    (folder / "run.json").write_text(json.dumps(manifest, indent=2) + "\n")


# --------------------------------------------------------------------------- baseline


def baseline(folder: Path) -> list[dict]:
    """The straightforward version: whole levels in memory, np.sign products."""
    from safetensors import safe_open

    def load(path: Path, masks: bool):
        with safe_open(str(path), framework="np") as f:
            names = [k[len("mask/") :] for k in f.keys() if k.startswith("mask/")]
            weights = {n: f.get_tensor(n) for n in names or prunable_names}
            return weights, (
                {n: f.get_tensor(f"mask/{n}").astype(bool) for n in names} if masks else None
            )

    levels = sorted(folder.glob("level_*.safetensors"))
    with safe_open(str(levels[0]), framework="np") as f:
        prunable_names = [k[len("mask/") :] for k in f.keys() if k.startswith("mask/")]
    init, _ = load(folder / "init.safetensors", False)
    init_sign = {n: np.sign(w) for n, w in init.items()}
    total = sum(w.size for w in init.values())
    rows, prev_sign, prev_mask = [], None, None
    for lvl, path in enumerate(levels):
        weights, masks = load(path, True)
        sign = {n: np.sign(w) for n, w in weights.items()}
        alive = sum(int(m.sum()) for m in masks.values())
        flips_init = sum(int((((sign[n] * init_sign[n]) < 0) & masks[n]).sum()) for n in sign)
        flips_prev = (
            None
            if prev_sign is None
            else sum(
                int((((sign[n] * prev_sign[n]) < 0) & masks[n] & prev_mask[n]).sum()) for n in sign
            )
        )
        rows.append(
            {
                "run": str(folder),
                "level": lvl,
                "density": alive / total,
                "alive": alive,
                "flips_prev": flips_prev,
                "flips_init": flips_init,
            }
        )
        prev_sign, prev_mask = sign, masks
    return rows


# --------------------------------------------------------------------------- timing


def _spawn_and_wait(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system), peak RSS (MB) and stdout of one child,
    reaped with wait4, which reports that child's own resource usage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.decode()


def warm(folder: Path) -> float:
    t0 = time.perf_counter()
    buf = bytearray(16 << 20)
    for path in sorted(folder.glob("*.safetensors")):
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--dir", type=Path, default=REPO / "bench-data", help="where the run is written"
    )
    ap.add_argument("--levels", type=int, default=20)
    ap.add_argument("--scale", type=float, default=1.0, help="shrink the layers (quick runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--baseline-only", metavar="RUN", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_only:
        print(json.dumps(baseline(Path(args.baseline_only))))
        return

    run_dir = args.dir / f"resnet50-L{args.levels}-s{args.scale:g}-seed{args.seed}"
    stamp = run_dir / "run.json"
    if not stamp.exists():
        t0 = time.perf_counter()
        synthesize(run_dir, args.levels, args.scale, args.seed)
        print(f"synthesized {run_dir} in {time.perf_counter() - t0:.1f} s")
    size = sum(p.stat().st_size for p in run_dir.glob("*.safetensors"))
    n_prunable = json.loads(stamp.read_text())["prunable"]
    print(
        f"run: {run_dir}  {args.levels} levels, {n_prunable / 1e6:.2f}M prunable weights, "
        f"{size / 1e9:.2f} GB"
    )
    print(f"page cache warmed in {warm(run_dir):.1f} s; cores: {os.cpu_count()}")

    start_cmd = [sys.executable, "-m", "signscope", "--version"]
    ours_cmd = [sys.executable, "-m", "signscope", "flips", str(run_dir), "--format", "json"]
    base_cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline-only", str(run_dir)]
    results: dict[str, list[tuple[float, float, float]]] = {
        "signscope flips": [],
        "baseline": [],
        "CLI start only": [],
    }
    outputs = {}
    for _ in range(args.repeat):
        for label, cmd in (
            ("signscope flips", ours_cmd),
            ("baseline", base_cmd),
            ("CLI start only", start_cmd),
        ):
            if label == "baseline" and args.skip_baseline:
                continue
            wall, cpu, rss, out = _spawn_and_wait(cmd)
            results[label].append((wall, cpu, rss))
            outputs[label] = out
    if not args.skip_baseline:
        ours = json.loads(outputs["signscope flips"])["levels"]
        base = json.loads(outputs["baseline"])
        for a, b in zip(ours, base, strict=True):
            if {k: a[k] for k in ("level", "alive", "flips_prev", "flips_init")} != {
                k: b[k] for k in ("level", "alive", "flips_prev", "flips_init")
            }:
                raise SystemExit(f"MISMATCH at level {a['level']}: signscope {a} baseline {b}")
        print("levels tables agree")
    for label, rows in results.items():
        if rows:
            walls = [w for w, _, _ in rows]
            print(
                f"{label:16s} wall best {min(walls):6.2f} s"
                f"  median {statistics.median(walls):6.2f} s"
                f"  CPU best {min(c for _, c, _ in rows):6.2f} s"
                f"  peak RSS {max(r for _, _, r in rows):6.0f} MB  ({len(rows)} runs)"
            )
    if results["baseline"]:
        ours, base = results["signscope flips"], results["baseline"]
        print(
            f"speedup, wall best vs best: {min(r[0] for r in base) / min(r[0] for r in ours):.1f}x;"
            f" CPU: {min(r[1] for r in base) / min(r[1] for r in ours):.1f}x"
        )


if __name__ == "__main__":
    main()
