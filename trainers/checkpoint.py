"""Write and read the tensors of a run (SPEC section 2) from PyTorch state dicts.

Level files hold the full state dict (parameters and buffers, pruned weights exactly 0)
plus ``mask/NAME`` uint8 tensors; every file goes through a temporary name and a rename.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load as _st_load

from signscope.errors import RunFormatError
from signscope.runformat import (
    FORMAT,
    INIT_FILE,
    MASK_PREFIX,
    REWIND_FILE,
    atomic_write_bytes,
    level_filename,
    level_metadata,
    mask_name,
)


def _cpu_contiguous(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage and non-contiguous views; clone to own the memory.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


_DTYPE_CODES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def serialize(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """safetensors bytes with a deterministic header.

    ``safetensors.torch.save`` keeps the metadata in a Rust HashMap, so its key order (and
    therefore the file's bytes) changes from call to call; identical runs must give identical
    files. Tensors are laid out as safetensors does (larger element sizes first, then by name),
    which keeps every tensor aligned to its element size for memory-mapped readers.
    """
    items = sorted(_cpu_contiguous(tensors).items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header: dict = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    chunks, offset = [], 0
    for name, t in items:
        if t.dtype not in _DTYPE_CODES:
            raise TypeError(f"{name}: dtype {t.dtype} cannot be stored")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": _DTYPE_CODES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def save_tensors(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> None:
    atomic_write_bytes(path, serialize(tensors, {str(k): str(v) for k, v in metadata.items()}))


def write_reference(run_dir: str | Path, which: str, state: Mapping[str, torch.Tensor]) -> Path:
    """``init.safetensors`` or ``rewind.safetensors``. The metadata names no method, so that
    IMP and LRR from one seed write byte-identical files."""
    name = {"init": INIT_FILE, "rewind": REWIND_FILE}[which]
    path = Path(run_dir) / name
    save_tensors(path, state, {"format": FORMAT, "kind": which})
    return path


def alive_and_density(masks: Mapping[str, torch.Tensor]) -> tuple[int, float]:
    """The alive weights under ``masks`` and their share of all masked weights (1.0 when there
    are none): what a level file, run.json and the progress lines record."""
    alive = sum(int(m.count_nonzero()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return alive, alive / total if total else 1.0


def write_level(
    run_dir: str | Path,
    level: int,
    state: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    method: str,
    test_acc: float | None = None,
    **extra_meta,
) -> Path:
    """One level checkpoint: the state dict with pruned weights zeroed, plus masks."""
    tensors = dict(state)
    for name, m in masks.items():
        m_bool = m.to(torch.bool)
        tensors[name] = torch.where(
            m_bool.to(state[name].device), state[name], torch.zeros((), dtype=state[name].dtype)
        )
        tensors[mask_name(name)] = m_bool.to(torch.uint8)
    alive, density = alive_and_density(masks)
    meta = level_metadata(level, density, method, test_acc, alive=alive, **extra_meta)
    path = Path(run_dir) / level_filename(level)
    save_tensors(path, tensors, meta)
    return path


def load_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of one safetensors file, with a clean error when it is damaged.

    The header is checked (and its metadata read) by the inspection reader, so a truncated
    or missing file gets the same one-line message here as in ``signscope flips``.
    """
    from signscope.reader import read_header

    path = Path(path)
    meta = read_header(path).metadata
    try:
        tensors = _st_load(path.read_bytes())
    except Exception as exc:  # safetensors raises its own error types for bad data
        raise RunFormatError(f"{path}: not a readable safetensors file ({exc})") from None
    return tensors, dict(meta)


def split_masks(
    tensors: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Separate a level file into (state dict, masks as bool tensors)."""
    state, masks = {}, {}
    for k, v in tensors.items():
        if k.startswith(MASK_PREFIX):
            masks[k[len(MASK_PREFIX) :]] = v.to(torch.bool)
        else:
            state[k] = v
    return state, masks


def read_reference(run_dir: str | Path, which: str) -> dict[str, torch.Tensor]:
    """The state dict in ``init.safetensors`` or ``rewind.safetensors``."""
    name = {"init": INIT_FILE, "rewind": REWIND_FILE}[which]
    tensors, _ = load_file(Path(run_dir) / name)
    return tensors


def read_level(
    run_dir: str | Path, level: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, str]]:
    """(state dict, bool masks, metadata) of one level file."""
    tensors, meta = load_file(Path(run_dir) / level_filename(level))
    state, masks = split_masks(tensors)
    return state, masks, meta


def completed_levels(run_dir: str | Path) -> list[int]:
    """Levels 0..K whose files exist, stopping at the first gap.

    Level files are renamed into place only when complete, so their presence is the record
    of progress that a resumed run trusts (run.json is rebuilt from them).
    """
    done = []
    while (Path(run_dir) / level_filename(len(done))).is_file():
        done.append(len(done))
    return done
