"""Find every run below some paths, cheaply (SPEC section 2).

A folder holding ``run.json`` is a signscope run; a folder of checkpoint folders (the
Hugging Face Trainer's ``checkpoint-N/``) a checkpoint-folder run; any other folder holding
``*.safetensors`` files is a plain run (or one sharded checkpoint). Discovery reads
manifests and safetensors *headers* only, never tensor data, so listing a folder of multi-GB
ResNet50 runs takes milliseconds; the metrics are computed later, on demand, by
:mod:`signscope.api`.

A run that cannot be read is still returned, with ``error`` set, so that a user interface can
show it (flagged) next to the healthy ones instead of stopping at the first bad file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from signscope.checkpoints import has_checkpoint_subfolders, read_checkpoint, step_of
from signscope.errors import RunFormatError
from signscope.reader import locate_run
from signscope.runformat import MANIFEST, natural_key

# Folders that never hold runs but can be huge to walk.
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}


@dataclass(frozen=True)
class LevelInfo:
    """One checkpoint of a run, as far as its header and the manifest tell. ``file`` is its
    file name, or its folder's name in a checkpoint-folder run (with the step read from it)."""

    level: int
    file: str
    density: float | None = None
    test_acc: float | None = None
    step: int | None = None


@dataclass(frozen=True)
class FoundRun:
    """A run found on disk. ``label`` is the path to show and to pass to ``open_run``."""

    label: str
    path: Path
    kind: str  # "signscope" | "plain" | "checkpoints" | "checkpoint"
    method: str | None = None
    config: dict = field(default_factory=dict)
    levels: tuple[LevelInfo, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Discovery:
    """Everything found below the given paths; ``problems`` names paths that do not exist."""

    roots: tuple[str, ...]
    runs: tuple[FoundRun, ...]
    problems: tuple[str, ...] = ()


def _float(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _describe(label: str, folder: Path) -> FoundRun:
    """Levels, method and config of the run in ``folder``, from its manifest and headers."""
    layout = locate_run(folder)
    manifest = layout.manifest or {}
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    summary = {
        row["level"]: row
        for row in manifest.get("levels") or []
        if isinstance(row, dict) and isinstance(row.get("level"), int)
    }
    method = config.get("method")
    levels = []
    for number, (path, name) in enumerate(zip(layout.levels, layout.labels, strict=True)):
        # Reading headers checks that every tensor fits in its file and that a sharded
        # checkpoint matches its index: truncated copies show up here.
        meta = read_checkpoint(path).metadata
        method = method or meta.get("method")
        row = summary.get(number, {})
        levels.append(
            LevelInfo(
                level=number,
                file=name,
                density=_float(row.get("density", meta.get("density"))),
                test_acc=_float(row.get("test_acc", meta.get("test_acc"))),
                step=step_of(name) if layout.kind == "checkpoints" else None,
            )
        )
    return FoundRun(
        label=label,
        path=folder,
        kind=layout.kind,
        method=method or None,
        config=dict(config),
        levels=tuple(levels),
    )


def _examine(
    label: str, folder: Path, files: Sequence[str], subfolders: Sequence[str] = ()
) -> FoundRun | None:
    is_signscope = MANIFEST in files
    if is_signscope:
        kind = "signscope"
    elif has_checkpoint_subfolders(folder, files, subfolders):
        kind = "checkpoints"
    elif any(n.endswith(".safetensors") for n in files):
        kind = "plain"
    else:
        return None
    try:
        return _describe(label, folder)
    except RunFormatError as exc:
        return FoundRun(label=label, path=folder, kind=kind, error=str(exc))
    except OSError as exc:
        return FoundRun(
            label=label, path=folder, kind=kind, error=f"{folder}: {exc.strerror or exc}"
        )


def _join(root: str, rel: str) -> str:
    if rel in ("", "."):
        return root
    return os.path.normpath(os.path.join(root, rel))


def _walk(root: str) -> Iterable[FoundRun]:
    base = Path(root)
    if base.is_file():
        # A checkpoint or manifest given directly stands for the folder it lives in.
        if base.name == MANIFEST or base.suffix == ".safetensors":
            folder = base.parent
            found = _examine(str(folder), folder, os.listdir(folder))
            if found is not None:
                yield found
        return
    for dirpath, dirnames, filenames in os.walk(base, onerror=None):
        rel = os.path.relpath(dirpath, base)
        found = _examine(_join(root, rel), Path(dirpath), filenames, dirnames)
        if found is not None:
            # A run folder is a leaf: its subfolders are not other runs.
            dirnames[:] = []
            yield found
            continue
        dirnames[:] = sorted(
            (d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS), key=natural_key
        )


def discover(paths: Sequence[str | os.PathLike] | None = None) -> Discovery:
    """Every run below ``paths`` (default ``.``), in natural order, each run reported once."""
    roots = tuple(str(p) for p in (paths or ["."]))
    runs: list[FoundRun] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for root in roots:
        if not os.path.exists(root):
            problems.append(f"{root}: no such file or folder")
            continue
        for found in _walk(root):
            key = found.path.resolve()
            if key not in seen:
                seen.add(key)
                runs.append(found)
    return Discovery(roots=roots, runs=tuple(runs), problems=tuple(problems))
