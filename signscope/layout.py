"""Where a run's levels and references are (SPEC section 2): a signscope run folder, a folder of
checkpoint folders, a sharded checkpoint, a single file or a plain folder of files."""

from __future__ import annotations

import os
from pathlib import Path

from signscope.checkpoints import locate_checkpoints, single_checkpoint
from signscope.errors import RunFormatError
from signscope.runformat import (
    INIT_FILE,
    LEVEL_RE,
    REWIND_FILE,
    RunLayout,
    natural_key,
    read_manifest,
)


def locate_run(path: Path) -> RunLayout:
    """Find the level files and references of the run in folder ``path``.

    A folder with ``run.json`` is a signscope run whose levels are ``level_NNN.safetensors``
    (0..N without gaps). A folder of checkpoint folders, a sharded checkpoint or a checkpoint
    file given alone are laid out by :func:`signscope.checkpoints.locate_checkpoints`. Any
    other folder of ``*.safetensors`` is a plain run: its files in natural name order are
    levels 0, 1, ...; a file whose name starts with ``init`` is the initial reference and
    ``rewind.safetensors`` the rewind point, neither of them a level.
    """
    if not path.exists():
        raise RunFormatError(f"{path}: no such file or folder")
    if path.is_file() and path.name.endswith(".safetensors"):
        return single_checkpoint(path)
    if not path.is_dir():
        raise RunFormatError(
            f"{path}: not a run folder or checkpoint (give the folder that holds the "
            "checkpoints, or a *.safetensors file)"
        )
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise RunFormatError(f"{path}: cannot list the folder ({exc.strerror})") from None
    names = [n for n in entries if n.endswith(".safetensors") and not n.startswith(".")]
    manifest = read_manifest(path)
    if manifest is not None:
        numbered = sorted((int(m.group(1)), n) for n in names if (m := LEVEL_RE.match(n)))
        if not numbered:
            raise RunFormatError(f"{path}: run.json but no level_NNN.safetensors checkpoints")
        found = [lvl for lvl, _ in numbered]
        if found != list(range(len(found))):
            missing = sorted(set(range(found[-1] + 1)) - set(found))
            raise RunFormatError(
                f"{path}: level file(s) missing for level(s) {', '.join(map(str, missing))}"
            )
        return RunLayout(
            "signscope",
            manifest,
            tuple(path / n for _, n in numbered),
            path / INIT_FILE if INIT_FILE in names else None,
            path / REWIND_FILE if REWIND_FILE in names else None,
            labels=tuple(n for _, n in numbered),
        )
    layout = locate_checkpoints(path, entries)
    if layout is not None:
        return layout
    inits = sorted((n for n in names if n.startswith("init")), key=natural_key)
    if len(inits) > 1:
        raise RunFormatError(
            f"{path}: several initial references ({', '.join(inits)}); keep one "
            "file whose name starts with 'init'"
        )
    levels = sorted(
        (n for n in names if not n.startswith("init") and n != REWIND_FILE), key=natural_key
    )
    if not levels:
        raise RunFormatError(
            f"{path}: no checkpoints (no *.safetensors files besides references)"
            if names
            else f"{path}: no checkpoints (*.safetensors) in this folder"
        )
    return RunLayout(
        "plain",
        None,
        tuple(path / n for n in levels),
        path / inits[0] if inits else None,
        path / REWIND_FILE if REWIND_FILE in names else None,
        labels=tuple(levels),
    )
