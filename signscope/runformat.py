"""The run directory, format version 1 (SPEC section 2): names, ordering and atomic writes.

Both the trainers (which write runs) and the inspection layer (which reads them) use
these helpers, so the on-disk names live in exactly one place. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signscope.version import __version__

FORMAT = "signscope/1"
FORMAT_VERSION = 1
MANIFEST = "run.json"
METRICS = "metrics.jsonl"
INIT_FILE = "init.safetensors"
REWIND_FILE = "rewind.safetensors"
MASK_PREFIX = "mask/"
LEVEL_RE = re.compile(r"^level_(\d+)\.safetensors$")
# Held (flock) by the process training into the folder; hidden like the temporaries.
LOCK_FILE = ".signscope.lock"

# Every file signscope writes into a run folder, and the temporaries of atomic_write_bytes
# (".NAME.XXXXXXXX.tmp"). --force replaces exactly these and nothing else.
_OWN_NAMES = (
    r"run\.json|metrics\.jsonl|init\.safetensors|rewind\.safetensors|level_\d+\.safetensors"
)
_OWN_FILE = re.compile(rf"^(?:{_OWN_NAMES})$")
_TEMPORARY = re.compile(rf"^\.(?:{_OWN_NAMES})\.[^.]+\.tmp$")


def is_run_file(name: str) -> bool:
    """Whether a file named ``name`` in a run folder is one that signscope writes."""
    return bool(_OWN_FILE.match(name)) or is_temporary(name) or name == LOCK_FILE


def is_temporary(name: str) -> bool:
    """A temporary of an atomic write into a run folder; stale once no writer holds the run."""
    return bool(_TEMPORARY.match(name))


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


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A crash leaves either the old file or the new one under the final name, never a
    truncated one (SPEC section 2). The data is fsynced before the rename. A failure (full
    disk, read-only folder, name too long) is a SignscopeError naming ``path``, not the
    temporary.
    """
    from signscope.errors import SignscopeError

    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        # mkstemp creates the file 0600; give it the mode a plain open() would have.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(exc, OSError):
            raise SignscopeError(f"{path}: cannot write ({exc.strerror or exc})") from None
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


def level_metadata(
    level: int, density: float, method: str, test_acc: float | None = None, **extra: Any
) -> dict[str, str]:
    """Safetensors metadata of a level file (SPEC section 2: string -> string)."""
    meta = {
        "format": FORMAT,
        "level": str(level),
        "density": repr(float(density)),
        "method": method,
    }
    if test_acc is not None:
        meta["test_acc"] = repr(float(test_acc))
    meta.update({k: str(v) for k, v in extra.items() if v is not None})
    return meta


def method_label(manifest: Mapping | None, metadata: Iterable[Mapping] = ()) -> str | None:
    """The method label of a recorded run, the one every view shows and groups by.

    ``imp``, ``lrr``, ``lrr+bn-rewind``, ``imp-rand``, ``lrr+imp-mask``...: the ``method``
    metadata of the first level file that records one (``metadata``: the level files', in
    order), else the top-level ``method`` of ``run.json`` (``manifest``; the trainer writes it
    before the first level exists), else ``config.method``, with ``+bn-rewind`` when
    ``config.bn_rewind``. None when nothing records a method.

    The config comes last because it does not hold the label: ``signscope train`` records
    ``method: lrr`` and ``bn_rewind: true`` for an ``lrr+bn-rewind`` run, and the variants
    (``--prune random``, ``--mask-from``...) only as their options.
    """
    for meta in metadata:
        if isinstance(meta.get("method"), str) and meta["method"]:
            return meta["method"]
    manifest = manifest if isinstance(manifest, Mapping) else {}
    if isinstance(manifest.get("method"), str) and manifest["method"]:
        return manifest["method"]
    config = manifest.get("config")
    method = config.get("method") if isinstance(config, Mapping) else None
    if not method:
        return None
    return f"{method}+bn-rewind" if config.get("bn_rewind") else str(method)


def recorded_float(value: Any) -> float | None:
    """A number as run.json or safetensors metadata (strings) record it; None when missing or
    not a number, so one odd entry leaves a blank instead of failing the whole run."""
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def write_manifest(
    run_dir: str | os.PathLike, config: dict, levels: list[dict], complete: bool, **extra: Any
) -> None:
    """Rewrite ``run.json`` atomically: format version, full config, per-level summary."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "signscope_version": __version__,
        "config": config,
        "levels": levels,
        "complete": complete,
        **extra,
    }
    atomic_write_json(Path(run_dir) / MANIFEST, manifest)


def read_manifest(run_dir: str | os.PathLike) -> dict | None:
    """The parsed ``run.json``, or None when the folder has none (a plain run)."""
    from signscope.errors import RunFormatError
    from signscope.files import open_regular

    path = Path(run_dir) / MANIFEST
    if not os.path.lexists(path):
        return None
    try:
        with open_regular(path) as fh:
            manifest = json.loads(fh.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFormatError(f"{path}: not a readable run manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunFormatError(
            f"{path}: not a {FORMAT} manifest (format={manifest.get('format')!r})"
            if isinstance(manifest, dict)
            else f"{path}: not a JSON object"
        )
    version = manifest.get("format_version", FORMAT_VERSION)
    if type(version) is not int or version < 1:
        raise RunFormatError(f"{path}: format_version {version!r} is not a version number")
    if version > FORMAT_VERSION:
        # A later format may change what the files mean; guessing would give wrong numbers.
        raise RunFormatError(
            f"{path}: written in run format version {version}, but this signscope "
            f"({__version__}) reads version {FORMAT_VERSION}; upgrade signscope to read it"
        )
    return manifest


@dataclass(frozen=True)
class RunLayout:
    """Which files of a run folder are its levels and references (SPEC section 2)."""

    kind: str  # "signscope" | "plain" | "checkpoints" (folder of checkpoint folders) | "checkpoint"
    manifest: dict | None
    levels: tuple[Path, ...]  # index = level number; a file, or the folder of a sharded checkpoint
    init: Path | None
    rewind: Path | None
    labels: tuple[str, ...] = ()  # a name per level: its file, or its checkpoint folder
