"""The run directory, format version 1 (SPEC section 2): names, ordering and atomic writes.

Both the trainers (which write runs) and the inspection layer (which reads them) use
these helpers, so the on-disk names live in exactly one place. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

FORMAT = "signscope/1"
FORMAT_VERSION = 1
MANIFEST = "run.json"
METRICS = "metrics.jsonl"
INIT_FILE = "init.safetensors"
REWIND_FILE = "rewind.safetensors"
MASK_PREFIX = "mask/"
LEVEL_RE = re.compile(r"^level_(\d+)\.safetensors$")


def level_filename(level: int) -> str:
    """``level_000.safetensors`` style names; three digits sort well up to 999 levels."""
    return f"level_{level:03d}.safetensors"


def mask_name(tensor_name: str) -> str:
    return MASK_PREFIX + tensor_name


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key so that ``level_2`` comes before ``level_10`` (SPEC section 2, plain runs)."""
    parts = _DIGITS.split(name)
    return tuple((0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in parts)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A crash leaves either the old file or the new one under the final name, never a
    truncated one (SPEC section 2). The data is fsynced before the rename.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line by rewriting the file atomically.

    ``metrics.jsonl`` is small (one line per epoch), so rewriting it keeps the rule that
    no file under a final name is ever half written.
    """
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    atomic_write_bytes(path, old + line.rstrip("\n").encode("utf-8") + b"\n")
