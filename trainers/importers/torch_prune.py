"""``torch-prune``: a folder of state dicts saved with ``torch.nn.utils.prune`` applied.

``torch.nn.utils.prune`` replaces a pruned parameter ``NAME`` by ``NAME_orig`` (the raw
values, pruned ones included) and a buffer ``NAME_mask``. One file per level, levels in the
natural order of the file names (``level_2`` before ``level_10``). A file whose name starts
with ``init`` (or ``rewind``) is that reference point, as for plain runs (SPEC section 2).

Pruning with ``torch.nn.utils.prune`` is cumulative, so the last level names every pruned
tensor; an earlier level without a mask for one of them (typically the dense level 0,
saved before pruning) has that tensor fully alive.
"""

from __future__ import annotations

from pathlib import Path

import torch

from signscope.errors import RunFormatError
from signscope.runformat import natural_key
from trainers.importers.common import (
    ImportPlan,
    LevelData,
    LevelSource,
    Masks,
    RefSource,
    State,
    load_checkpoint,
    state_dict_of,
    strip_prefix,
)

SUFFIXES = (".pt", ".pth")
_ORIG, _MASK = "_orig", "_mask"


def split_pruned(raw: State) -> tuple[State, Masks]:
    """Rename ``NAME_orig`` to ``NAME`` and take ``NAME_mask`` out as the mask of ``NAME``.

    A ``*_mask`` tensor without its ``*_orig`` partner is an ordinary buffer and stays.
    """
    state: State = {}
    masks: Masks = {}
    for key, value in raw.items():
        if key.endswith(_ORIG):
            base = key[: -len(_ORIG)]
            if base + _MASK in raw:
                state[base] = value
                masks[base] = raw[base + _MASK]
                continue
        if key.endswith(_MASK) and key[: -len(_MASK)] + _ORIG in raw:
            continue
        state[key] = value
    return state, masks


def _read(path: Path) -> tuple[State, Masks]:
    state, masks = split_pruned(strip_prefix(state_dict_of(load_checkpoint(path), path)))
    # NAME_orig without NAME_mask: the file lost half of a pruned parameter, and NAME is
    # nowhere, so say which half is missing rather than that NAME is.
    for key in state:
        base = key[: -len(_ORIG)]
        if key.endswith(_ORIG) and base not in state:
            raise RunFormatError(
                f"{path}: has {key} but no {base}{_MASK}; torch.nn.utils.prune saves the two "
                "together"
            )
    return state, masks


def _read_reference(path: Path) -> State:
    return _read(path)[0]


def _level_reader(path: Path, pruned: frozenset[str]):
    def read() -> LevelData:
        state, masks = _read(path)
        stray = sorted(set(masks) - pruned)
        if stray:
            raise RunFormatError(
                f"{path}: {stray[0]} is pruned here but not in the last level; "
                "torch.nn.utils.prune masks never disappear, so the files are out of order"
            )
        for name in pruned - set(masks):
            if name not in state:
                raise RunFormatError(f"{path}: lacks {name}, which later levels prune")
            masks[name] = torch.ones(state[name].shape, dtype=torch.bool)
        return LevelData(state, masks)

    return read


def plan(src: Path) -> ImportPlan:
    files = sorted(
        (p for p in src.iterdir() if p.is_file() and p.suffix in SUFFIXES),
        key=lambda p: natural_key(p.name),
    )
    refs = {which: [p for p in files if p.name.startswith(which)] for which in ("init", "rewind")}
    for which, found in refs.items():
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise RunFormatError(f"{src}: several {which} files ({names}); keep one")
    levels = [p for p in files if not p.name.startswith(("init", "rewind"))]
    if not levels:
        raise RunFormatError(f"{src}: no checkpoints (*.pt, *.pth) found")
    _, last_masks = _read(levels[-1])
    if not last_masks:
        raise RunFormatError(
            f"{levels[-1]}: no NAME_orig/NAME_mask pairs: "
            "not saved with torch.nn.utils.prune applied"
        )
    pruned = frozenset(last_masks)
    del last_masks
    return ImportPlan(
        kind="torch-prune",
        src=src,
        levels=[LevelSource(i, p, _level_reader(p, pruned)) for i, p in enumerate(levels)],
        init=RefSource(refs["init"][0], lambda: _read_reference(refs["init"][0]))
        if refs["init"]
        else None,
        rewind=RefSource(refs["rewind"][0], lambda: _read_reference(refs["rewind"][0]))
        if refs["rewind"]
        else None,
        details={"files": [p.name for p in levels]},
        read_reference=_read_reference,
    )
