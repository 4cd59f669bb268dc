"""Time ``signscope flips`` and ``signs`` on fine-tuning checkpoints of a 1.1B-parameter
decoder, with the page cache cold and warm.

    python examples/bench_checkpoints.py                    # full size: ~17.6 GB under --dir
    python examples/bench_checkpoints.py --scale 0.02       # the same shapes, shrunk, quick
    python examples/bench_checkpoints.py --wait-load 1.0    # first wait for a quiet machine

Step 1 writes (seeded, chunk by chunk, through pwrite) what fine-tuning TinyLlama-1.1B with
the Hugging Face Trainer leaves on disk: TinyLlama's tensor names and shapes (22 layers,
hidden 2048, MLP 5632, 4 key/value heads, vocabulary 32000, untied ``lm_head``), all bf16:

    DIR/base/model.safetensors                       the base model
    DIR/ft-a/checkpoint-{1000..5000}/                run A: 5 checkpoints; checkpoint-3000 in
                                                     two shards with its index
    DIR/ft-b/checkpoint-{1000,2000}/                 run B: a second fine-tune of the base

Each checkpoint folder also holds ``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth`` and
``trainer_state.json`` (small stand-ins; signscope never opens them). Every checkpoint adds a
little noise to the previous one, so a few signs flip per checkpoint. Run B has two
checkpoints so that the data ``signs A B`` reads (A's and B's first two, 8.8 GB) stays in the
page cache of a 24 GiB machine next to A and the base. The files are reused while ``DIR``
holds a complete set for the same ``--scale``.

Step 2 times, each in its own process (wall, CPU and peak RSS from ``wait4``):
- ``signscope flips DIR/ft-a --reference DIR/base --format json`` (6 checkpoints read);
- ``signscope signs DIR/ft-a DIR/ft-b --format json`` (levels 0 and 1 of both runs);
first with a cold page cache (``sync; echo 3 > /proc/sys/vm/drop_caches``, needs root), then
warm (best of ``--repeat``). GB/s is the size of the checkpoint files read over wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CHUNK = 1 << 22
STEPS_A = (1000, 2000, 3000, 4000, 5000)
STEPS_B = (1000, 2000)
SHARDED = ("ft-a", 3000)
EXTRAS = ("optimizer.pt", "scheduler.pt", "rng_state.pth")


# --------------------------------------------------------------------------- the model


def tinyllama_state(scale: float = 1.0) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of TinyLlama-1.1B's state dict, sorted by name as safetensors writes it.
    ``scale`` < 1 shrinks the first dimension of every matrix (for quick runs)."""
    hidden, mlp, kv, vocab, layers = 2048, 5632, 256, 32000, 22

    def rows(n: int) -> int:
        return max(1, int(n * scale))

    out = [
        ("model.embed_tokens.weight", (rows(vocab), hidden)),
        ("model.norm.weight", (hidden,)),
        ("lm_head.weight", (rows(vocab), hidden)),
    ]
    for i in range(layers):
        p = f"model.layers.{i}"
        out += [
            (f"{p}.self_attn.q_proj.weight", (rows(hidden), hidden)),
            (f"{p}.self_attn.k_proj.weight", (rows(kv), hidden)),
            (f"{p}.self_attn.v_proj.weight", (rows(kv), hidden)),
            (f"{p}.self_attn.o_proj.weight", (rows(hidden), hidden)),
            (f"{p}.mlp.gate_proj.weight", (rows(mlp), hidden)),
            (f"{p}.mlp.up_proj.weight", (rows(mlp), hidden)),
            (f"{p}.mlp.down_proj.weight", (rows(hidden), mlp)),
            (f"{p}.input_layernorm.weight", (hidden,)),
            (f"{p}.post_attention_layernorm.weight", (hidden,)),
        ]
    return sorted(out)


def numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


# --------------------------------------------------------------------------- synthesis


def to_bf16(a: np.ndarray) -> bytes:
    """float32 -> bfloat16 bytes, rounding to nearest even."""
    bits = a.view(np.uint32)
    return ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype("<u2").tobytes()


class Writer:
    """One safetensors file (header first, data by pwrite), renamed into place at close."""

    def __init__(self, path: Path, tensors: list[tuple[str, tuple[int, ...]]]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        header, self.offsets, pos = {}, {}, 0
        for name, shape in tensors:
            nbytes = 2 * numel(shape)
            header[name] = {
                "dtype": "BF16",
                "shape": list(shape),
                "data_offsets": [pos, pos + nbytes],
            }
            self.offsets[name] = pos
            pos += nbytes
        head = json.dumps({"__metadata__": {"format": "pt"}, **header}, separators=(",", ":"))
        head = head.encode() + b" " * (-len(head) % 8)
        self.base = 8 + len(head)
        self.size = self.base + pos
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(self.fd, len(head).to_bytes(8, "little") + head, 0)

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        os.pwrite(self.fd, to_bf16(values), self.base + self.offsets[name] + 2 * start)

    def close(self) -> None:
        os.close(self.fd)
        os.replace(self.tmp, self.path)


def checkpoint_writers(folder: Path, state, shards: int) -> tuple[list[Writer], dict[str, Writer]]:
    """Writers for one checkpoint folder (one file, or ``shards`` shards and an index)."""
    if shards == 1:
        writers = [Writer(folder / "model.safetensors", state)]
    else:
        size = -(-len(state) // shards)
        groups = [state[i : i + size] for i in range(0, len(state), size)]
        writers = [
            Writer(folder / f"model-{i:05d}-of-{len(groups):05d}.safetensors", group)
            for i, group in enumerate(groups, start=1)
        ]
        weight_map = {name: w.path.name for w in writers for name in w.offsets}
        total = sum(2 * numel(s) for _, s in state)
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return writers, {name: w for w in writers for name in w.offsets}


def synthesize(root: Path, scale: float, seed: int) -> None:
    state = tinyllama_state(scale)
    plan = [("base", None)] + [("ft-a", s) for s in STEPS_A] + [("ft-b", s) for s in STEPS_B]
    files = {}
    for run, step in plan:
        folder = root / run if step is None else root / run / f"checkpoint-{step}"
        shards = 2 if (run, step) == SHARDED else 1
        files[(run, step)] = checkpoint_writers(folder, state, shards)
        if step is not None:
            for extra in EXTRAS:
                (folder / extra).write_bytes(b"\x80\x04N.")  # pickle of None: never read
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (root / "base" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    # Noise for the fine-tuning steps comes from one pool, sliced at random offsets: drawing
    # fresh normals for 8 files x 1.1B weights would take minutes of CPU.
    pool = np.random.default_rng(seed).standard_normal(1 << 24, dtype=np.float32)
    for t, (name, shape) in enumerate(state):
        n_all = numel(shape)
        std = np.float32(0.02 if len(shape) == 2 else 1.0)
        for c, start in enumerate(range(0, n_all, CHUNK)):
            n = min(CHUNK, n_all - start)
            rng = np.random.default_rng([seed, t, c])
            base = rng.standard_normal(n, dtype=np.float32) * std
            if len(shape) == 1:
                base += np.float32(1.0)  # norm scales around 1
            files[("base", None)][1][name].write(name, start, base)
            for run, steps in (("ft-a", STEPS_A), ("ft-b", STEPS_B)):
                w = base.copy()
                for step in steps:
                    offset = int(rng.integers(0, pool.size - n + 1))
                    w += pool[offset : offset + n] * (std * np.float32(0.1))
                    files[(run, step)][1][name].write(name, start, w)
    for writers, _ in files.values():
        for w in writers:
            w.close()
    os.sync()


# --------------------------------------------------------------------------- timing


def run_child(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child, reaped with
    wait4, which reports that child's own resource usage; its stdout is discarded."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.chdir(REPO)
        os.execv(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed (exit {os.waitstatus_to_exitcode(status)})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def drop_caches() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def warm(paths: list[Path]) -> None:
    buf = bytearray(16 << 20)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def wait_for_quiet(limit: float, max_seconds: float) -> float:
    """Poll the 1-minute load average every 30 s until it is below ``limit``."""
    t0 = time.monotonic()
    while (load := os.getloadavg()[0]) >= limit and time.monotonic() - t0 < max_seconds:
        print(f"load average {load:.2f}, waiting for < {limit}", file=sys.stderr, flush=True)
        time.sleep(30)
    return load


def safetensors_in(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.safetensors"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=REPO / "bench-data", help="where the files go")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink the matrices (quick runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="warm runs of each command")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache runs")
    ap.add_argument("--wait-load", type=float, help="first wait until the load average is below")
    ap.add_argument("--wait-max", type=float, default=2700, help="seconds to wait at most")
    ap.add_argument("--generate-only", action="store_true")
    args = ap.parse_args()

    root = args.dir / f"tinyllama-s{args.scale:g}-seed{args.seed}"
    stamp = root / "complete.json"
    if not stamp.exists():
        t0 = time.perf_counter()
        synthesize(root, args.scale, args.seed)
        stamp.write_text(json.dumps({"scale": args.scale, "seed": args.seed}) + "\n")
        print(f"wrote {root} in {time.perf_counter() - t0:.0f} s")
    if args.generate_only:
        return
    a, b, base = root / "ft-a", root / "ft-b", root / "base"
    n_params = sum(numel(s) for _, s in tinyllama_state(args.scale))
    signscope = [sys.executable, "-m", "signscope"]
    levels_ab = [f"checkpoint-{s}" for s in STEPS_B]
    cases = [
        (
            "flips A --reference base",
            [*signscope, "flips", str(a), "--reference", str(base), "--format", "json"],
            safetensors_in(a) + safetensors_in(base),
        ),
        (
            "signs A B",
            [*signscope, "signs", str(a), str(b), "--format", "json"],
            [p for lv in levels_ab for run in (a, b) for p in safetensors_in(run / lv)],
        ),
    ]
    load = wait_for_quiet(args.wait_load, args.wait_max) if args.wait_load else None
    print(
        f"{n_params / 1e9:.2f}B parameters per checkpoint, bf16; {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.2f}"
        + (f" (waited for < {args.wait_load})" if load else "")
    )
    print("| command | cache | data | wall | GB/s | CPU (user+sys) | peak RSS | load avg |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, cmd, paths in cases:
        data = sum(p.stat().st_size for p in paths)
        runs = []
        if not args.no_cold:
            if not drop_caches():
                raise SystemExit("cannot drop the page cache (needs root); use --no-cold")
            runs.append(("cold", *run_child(cmd), os.getloadavg()[0]))
        warm(paths)
        warm_runs = [("warm", *run_child(cmd), os.getloadavg()[0]) for _ in range(args.repeat)]
        runs.append(min(warm_runs, key=lambda r: r[1]))
        for cache, wall, cpu, rss, load_now in runs:
            print(
                f"| `{label}` | {cache} | {data / 1e9:.2f} GB | {wall:.1f} s | "
                f"{data / 1e9 / wall:.2f} | {cpu:.1f} s | {rss:.0f} MB | {load_now:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
