"""Build small signscope runs and plain runs on disk for tests, without torch.

``write_safetensors`` writes the file format by hand (8-byte header length, JSON header,
raw little-endian data) so tests can produce bf16 tensors, which numpy cannot hold, and
can corrupt files on purpose.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from signscope.runformat import (
    FORMAT,
    INIT_FILE,
    MANIFEST,
    METRICS,
    REWIND_FILE,
    atomic_append_line,
    atomic_write_bytes,
    atomic_write_json,
    level_filename,
    mask_name,
)

_DTYPES = {
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(np.float64): "F64",
    np.dtype(np.uint8): "U8",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.bool_): "BOOL",
}


def to_bf16_bytes(a: np.ndarray) -> bytes:
    """Round-to-nearest-even float32 -> bfloat16, returned as raw little-endian bytes."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype("<u2").tobytes()


def from_bf16_bytes(raw: bytes, shape) -> np.ndarray:
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)


def safetensors_bytes(
    tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None, bf16: bool = False
) -> bytes:
    """Serialise ``tensors``; with ``bf16`` every float32 tensor is stored as BF16."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if bf16 and arr.dtype == np.float32:
            raw, code = to_bf16_bytes(arr), "BF16"
        else:
            raw, code = arr.astype(arr.dtype.newbyteorder("<")).tobytes(), _DTYPES[arr.dtype]
        header[name] = {
            "dtype": code,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def write_safetensors(path, tensors, metadata=None, bf16: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata, bf16=bf16))
    return path


def trainer_config(method: str) -> dict:
    """What ``signscope train`` records in ``run.json`` ``config`` for a run whose checkpoints
    record the label ``method``: the config keeps the options apart, so it disagrees with the
    label (``lrr+bn-rewind`` is ``method: lrr`` with ``bn_rewind: true``; ``imp-rand`` is
    ``method: imp`` with ``prune: random``)."""
    config: dict = {}
    if method.endswith("+bn-rewind"):
        method, config["bn_rewind"] = method.removesuffix("+bn-rewind"), True
    if method.endswith("-rand"):
        method, config["prune"] = method.removesuffix("-rand"), "random"
    return {"method": method, **config}


class RunWriter:
    """Writes a signscope run in the order `signscope train` does: the references and an
    incomplete ``run.json`` first, then a ``metrics.jsonl`` line per epoch, and per level its
    file and a rewritten ``run.json``; every file through a temporary name and a rename.
    ``method`` is the label, recorded as the trainer records it: in the level files' metadata
    and at the top of ``run.json``, and split into options in ``config`` (trainer_config)."""

    def __init__(
        self,
        path,
        init: Mapping[str, np.ndarray],
        rewind: Mapping[str, np.ndarray] | None = None,
        method: str = "lrr",
        seed: int = 0,
        config: Mapping | None = None,
        bf16: bool = False,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.init, self.rewind = dict(init), dict(rewind if rewind is not None else init)
        self.method, self.bf16 = method, bf16
        self.prunable = [n for n, a in init.items() if a.ndim >= 2 and n.endswith("weight")]
        self.n_prunable = sum(int(np.asarray(init[n]).size) for n in self.prunable)
        self.config = {
            **trainer_config(method),
            "seed": seed,
            "model": "toy",
            "dataset": "toy",
            **(config or {}),
        }
        self.summary: list[dict] = []

    def start(self) -> None:
        meta = {"format": FORMAT, "method": self.method}
        write_safetensors(self.path / INIT_FILE, self.init, {**meta, "kind": "init"}, self.bf16)
        write_safetensors(
            self.path / REWIND_FILE, self.rewind, {**meta, "kind": "rewind"}, self.bf16
        )
        self.manifest(complete=False)

    def manifest(self, complete: bool) -> None:
        atomic_write_json(
            self.path / MANIFEST,
            {
                "format": FORMAT,
                "format_version": 1,
                "config": self.config,
                "levels": self.summary,
                "complete": complete,
                "method": self.method,
            },
        )

    def epoch(self, record: Mapping) -> None:
        atomic_append_line(self.path / METRICS, json.dumps(dict(record)))

    def level(
        self,
        weights: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray] | None = None,
        test_acc: float | None = None,
    ) -> None:
        """Write the next level file, then ``run.json`` with its summary."""
        lvl = len(self.summary)
        masks = masks if masks is not None else {n: weights[n] != 0 for n in self.prunable}
        tensors: dict[str, np.ndarray] = {}
        alive = 0
        for name, arr in weights.items():
            arr = np.asarray(arr)
            if name in masks:
                m = np.asarray(masks[name]).astype(bool)
                arr = np.where(m, arr, 0).astype(arr.dtype)
                alive += int(m.sum())
            tensors[name] = arr
        for name, m in masks.items():
            tensors[mask_name(name)] = np.asarray(m).astype(np.uint8)
        density = alive / self.n_prunable if self.n_prunable else 1.0
        meta = {"format": FORMAT, "level": str(lvl), "density": repr(density)}
        meta["method"] = self.method
        if test_acc is not None:
            meta["test_acc"] = repr(float(test_acc))
        write_safetensors(self.path / level_filename(lvl), tensors, meta, bf16=self.bf16)
        self.summary.append(
            {
                "level": lvl,
                "density": density,
                "alive": alive,
                "test_acc": None if test_acc is None else float(test_acc),
            }
        )
        self.manifest(complete=False)


def write_run(
    path,
    levels: list[Mapping[str, np.ndarray]],
    init: Mapping[str, np.ndarray],
    masks: list[Mapping[str, np.ndarray]] | None = None,
    rewind: Mapping[str, np.ndarray] | None = None,
    method: str = "lrr",
    seed: int = 0,
    test_acc: list[float] | None = None,
    config: Mapping | None = None,
    bf16: bool = False,
) -> Path:
    """Write a signscope run (SPEC section 2) from explicit arrays.

    ``masks[L][name]`` gives the mask of each prunable tensor at level L; when omitted,
    masks are derived as ``weight != 0`` for every float tensor of 2+ dims named ``*weight``.
    Pruned weights are zeroed so the files honour the format.
    """
    writer = RunWriter(path, init, rewind, method, seed, config, bf16)
    writer.start()
    for lvl, weights in enumerate(levels):
        writer.level(
            weights,
            masks[lvl] if masks is not None else None,
            None if test_acc is None else test_acc[lvl],
        )
    writer.manifest(complete=True)
    atomic_write_bytes(writer.path / METRICS, b"")
    return writer.path


def random_levels(
    seed: int = 0,
    n_levels: int = 4,
    shapes: Mapping[str, tuple] | None = None,
    noise: float = 0.5,
    dtype=np.float32,
):
    """The arrays of a plausible toy run: prune 20% of the remaining weights by global
    magnitude each level, perturb the survivors so some signs flip, and carry one BatchNorm
    layer. Returns (init, levels, masks, test accuracies)."""
    rng = np.random.default_rng(seed)
    shapes = dict(shapes or {"conv1.weight": (4, 1, 3, 3), "fc.weight": (10, 16)})
    init = {n: rng.normal(size=s).astype(dtype) for n, s in shapes.items()}
    init["fc.bias"] = np.zeros(shapes.get("fc.weight", (10,))[0], dtype=dtype)
    init["bn1.weight"] = np.ones(4, dtype=dtype)
    init["bn1.bias"] = np.zeros(4, dtype=dtype)
    init["bn1.running_mean"] = np.zeros(4, dtype=dtype)
    init["bn1.running_var"] = np.ones(4, dtype=dtype)
    prunable = list(shapes)
    masks_now = {n: np.ones(shapes[n], dtype=bool) for n in prunable}
    current = {n: a.copy() for n, a in init.items()}
    levels, masks = [], []
    for lvl in range(n_levels):
        if lvl > 0:
            alive_vals = np.concatenate([np.abs(current[n][masks_now[n]]) for n in prunable])
            keep = int(round(0.8 * alive_vals.size))
            thresh = np.sort(alive_vals)[::-1][keep - 1]
            masks_now = {n: masks_now[n] & (np.abs(current[n]) >= thresh) for n in prunable}
        trained = {}
        for n, a in current.items():
            b = a + rng.normal(scale=noise, size=a.shape).astype(dtype)
            if n in masks_now:
                b = np.where(masks_now[n], b, 0)
                # No alive weight is exactly zero in a trained run.
                b = np.where(masks_now[n] & (b == 0), dtype(1e-3), b)
            trained[n] = b.astype(dtype)
        trained["bn1.weight"] = rng.normal(0.5, 0.3, size=4).astype(dtype)
        trained["bn1.running_var"] = rng.uniform(0.5, 2, size=4).astype(dtype)
        levels.append(trained)
        masks.append({n: m.copy() for n, m in masks_now.items()})
        current = trained
    acc = [0.9 - 0.01 * lvl + 0.001 * seed for lvl in range(n_levels)]
    return init, levels, masks, acc


def random_run(
    path,
    seed: int = 0,
    n_levels: int = 4,
    method: str = "lrr",
    shapes: Mapping[str, tuple] | None = None,
    noise: float = 0.5,
    bf16: bool = False,
    dtype=np.float32,
) -> Path:
    """A plausible toy run written at once (see :func:`random_levels`)."""
    init, levels, masks, acc = random_levels(seed, n_levels, shapes, noise, dtype)
    return write_run(
        path, levels, init, masks=masks, method=method, seed=seed, test_acc=acc, bf16=bf16
    )


class GrowingRun:
    """A :func:`random_run` that grows while something watches it: ``epoch()`` appends the
    next epoch's metrics line, ``finish_level()`` writes the level file, ``complete()`` marks
    the run complete, each the way the trainer writes them."""

    def __init__(self, path, seed: int = 0, n_levels: int = 3, epochs: int = 2, **kw) -> None:
        self.init, self.levels, self.masks, self.acc = random_levels(seed, n_levels)
        config = {"levels": n_levels, "epochs": epochs}
        self.writer = RunWriter(path, self.init, seed=seed, config=config, **kw)
        self.path = self.writer.path
        self.epochs = epochs
        self.level, self.done_epochs = 0, 0
        self.writer.start()

    def epoch(self, seconds: float = 1.0) -> dict:
        self.done_epochs += 1
        e = self.done_epochs
        record = {
            "level": self.level,
            "epoch": e,
            "lr": 0.1,
            "train_loss": round(2.0 / (e + self.level), 4),
            "train_acc": round(0.5 + 0.1 * e, 4),
            "test_acc": round(0.45 + 0.1 * e, 4),
            "seconds": seconds,
        }
        self.writer.epoch(record)
        return record

    def finish_level(self) -> None:
        lvl = self.level
        self.writer.level(self.levels[lvl], self.masks[lvl], self.acc[lvl])
        self.level, self.done_epochs = lvl + 1, 0

    def complete(self) -> None:
        self.writer.manifest(complete=True)


# --------------------------------------------------------------------------- Trainer folders

# Files the Hugging Face Trainer writes beside the weights; signscope must never open them.
TRAINER_EXTRAS = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin")


def write_sharded(folder, tensors: Mapping[str, np.ndarray], n_shards: int = 2, bf16=True) -> Path:
    """A sharded checkpoint as transformers writes it: ``model-0000i-of-0000n.safetensors``
    holding consecutive groups of tensors, and ``model.safetensors.index.json``."""
    folder = Path(folder)
    names = list(tensors)
    groups = [names[i::n_shards] for i in range(n_shards)]
    weight_map, total = {}, 0
    for i, group in enumerate(groups, start=1):
        shard = f"model-{i:05d}-of-{n_shards:05d}.safetensors"
        write_safetensors(folder / shard, {n: tensors[n] for n in group}, {"format": "pt"}, bf16)
        weight_map.update(dict.fromkeys(group, shard))
        total += sum(tensors[n].size * (2 if bf16 else tensors[n].itemsize) for n in group)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return folder


def write_trainer_checkpoint(
    folder, tensors: Mapping[str, np.ndarray], sharded: bool = False, extras: bytes = b""
) -> Path:
    """One ``checkpoint-N`` folder: bf16 weights (one file, or two shards and an index),
    ``trainer_state.json``, ``config.json``, and ``extras`` as each of TRAINER_EXTRAS."""
    folder = Path(folder)
    if sharded:
        write_sharded(folder, tensors)
    else:
        write_safetensors(folder / "model.safetensors", tensors, {"format": "pt"}, bf16=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 0, "log_history": []}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for name in TRAINER_EXTRAS:
        (folder / name).write_bytes(extras)
    return folder
