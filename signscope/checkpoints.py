"""Checkpoints outside signscope's own run format (SPEC section 2): sharded checkpoints read
through their index, folders of checkpoint folders (the Hugging Face Trainer's
``output/checkpoint-N/``), and references from outside a run (``--reference PATH``).

A *checkpoint* is one ``*.safetensors`` file, or a folder holding either exactly one such
file or a sharded set with its ``*.safetensors.index.json``. Only those files are opened:
``optimizer.pt``, ``rng_state.pth`` and the other files a trainer leaves beside them are
never read, let alone unpickled. Like :mod:`signscope.reader`, this reads headers only and
does not import numpy.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from signscope.errors import RunFormatError, listed
from signscope.reader import (
    WEIGHT_DTYPES,
    Checkpoint,
    corrupt,
    read_header,
)
from signscope.runformat import MANIFEST, RunLayout, natural_key

INDEX_SUFFIX = ".safetensors.index.json"
# transformers' shard names: model-00001-of-00003.safetensors
_SHARD_RE = re.compile(r"-\d+-of-\d+\.safetensors$")
_DIGITS = re.compile(r"\d+")
# An index is a small JSON file (a 70B model's is ~100 KB); a larger one is not an index.
_MAX_INDEX = 64 * 1024 * 1024


@dataclass(frozen=True)
class _Listing:
    """The names in one folder that matter for finding checkpoints."""

    safetensors: list[str]
    indexes: list[str]
    manifest: bool


def _listing(folder: Path, names: list[str] | None = None) -> _Listing:
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError as exc:
            raise RunFormatError(f"{folder}: cannot list the folder ({exc.strerror})") from None
    visible = [n for n in names if not n.startswith(".")]
    return _Listing(
        safetensors=sorted((n for n in visible if n.endswith(".safetensors")), key=natural_key),
        indexes=sorted(n for n in visible if n.endswith(INDEX_SUFFIX)),
        manifest=MANIFEST in visible,
    )


def _holds_one_checkpoint(listing: _Listing) -> bool:
    """One file, or an index, or files that can only be shards of one checkpoint (whose
    missing index is then reported when it is read)."""
    if listing.manifest:
        return False
    if listing.indexes or len(listing.safetensors) == 1:
        return True
    return len(listing.safetensors) > 1 and all(_SHARD_RE.search(n) for n in listing.safetensors)


def step_of(label: str) -> int | None:
    """The training step in a checkpoint folder's name: its last number
    (``checkpoint-1500`` -> 1500); None when the name has no digits."""
    numbers = _DIGITS.findall(label)
    return int(numbers[-1]) if numbers else None


# --------------------------------------------------------------------------- one checkpoint


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """The header(s) of the checkpoint at ``path``: a ``*.safetensors`` file or a folder
    holding one checkpoint (one file, or shards with their index)."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, _listing(path))
    return read_header(path)


def _read_folder(folder: Path, listing: _Listing) -> Checkpoint:
    if len(listing.indexes) > 1:
        raise RunFormatError(
            f"{folder}: several checkpoint indexes ({', '.join(listing.indexes)}); "
            "name the checkpoint to read"
        )
    if listing.indexes:
        return read_sharded(folder / listing.indexes[0], listing.safetensors)
    if len(listing.safetensors) == 1:
        return read_header(folder / listing.safetensors[0])
    if not listing.safetensors:
        raise RunFormatError(f"{folder}: no checkpoint (*.safetensors) in this folder")
    if all(_SHARD_RE.search(n) for n in listing.safetensors):
        raise RunFormatError(
            f"{folder}: {listing.safetensors[0]} and the other files are shards of one "
            f"checkpoint, but the folder has no *{INDEX_SUFFIX} that says which tensor is where"
        )
    raise RunFormatError(
        f"{folder}: several *.safetensors files ({listed(listing.safetensors)}) and no "
        f"*{INDEX_SUFFIX}: not one checkpoint; name one file"
    )


def _no_duplicates(index: Path):
    def hook(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise corrupt(index, f"names tensor {key!r} twice in its weight_map")
            seen.add(key)
        return dict(pairs)

    return hook


def _read_index(index: Path) -> dict[str, str]:
    """The index's ``weight_map`` (tensor name -> shard file name), checked for shape."""
    try:
        with open(index, "rb") as fh:
            raw = fh.read(_MAX_INDEX + 1)
    except OSError as exc:
        raise RunFormatError(f"{index}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > _MAX_INDEX:
        raise corrupt(index, f"over {_MAX_INDEX >> 20} MB: not a checkpoint index")
    try:
        parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates(index))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupt(index, "not a checkpoint index (not JSON)") from None
    weight_map = parsed.get("weight_map") if isinstance(parsed, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise corrupt(index, "not a checkpoint index (no weight_map object)")
    for name, shard in weight_map.items():
        if (
            not isinstance(shard, str)
            or not shard.endswith(".safetensors")
            or shard != os.path.basename(shard)
            or shard.startswith(".")
        ):
            raise corrupt(
                index,
                f"weight_map gives {shard!r} for tensor {name!r}; expected the name of a "
                "*.safetensors file in the same folder",
            )
    return weight_map


def read_sharded(index: Path, present: list[str] | None = None) -> Checkpoint:
    """One checkpoint from the shards that ``index`` names, checked against their headers:
    every shard exists, every tensor is in the shard the index gives and in no other, and
    no shard holds a tensor the index does not list."""
    folder = index.parent
    weight_map = _read_index(index)
    shards = sorted(set(weight_map.values()), key=natural_key)
    if present is None:
        present = _listing(folder).safetensors
    missing = [s for s in shards if s not in present]
    if missing:
        first = next(n for n, s in weight_map.items() if s == missing[0])
        raise RunFormatError(
            f"{folder / missing[0]}: missing; {index.name} puts tensor {first!r} "
            f"(and {sum(s == missing[0] for s in weight_map.values()) - 1} more) in it"
        )
    extra = [n for n in present if n not in shards]
    if extra:
        raise RunFormatError(
            f"{folder}: {listed(extra)} beside the shards of {index.name}, which does not "
            "name it; move it out of the checkpoint folder"
        )
    tensors, files, metadata, size = {}, {}, {}, 0
    for shard in shards:
        ckpt = read_header(folder / shard)
        size += ckpt.size
        for key, value in ckpt.metadata.items():
            metadata.setdefault(key, value)
        for name, info in ckpt.tensors.items():
            if name in files:
                raise RunFormatError(
                    f"{folder}: tensor {name!r} is in two shards, {files[name].name} and {shard}"
                )
            mapped = weight_map.get(name)
            if mapped != shard:
                raise RunFormatError(
                    f"{ckpt.path}: holds tensor {name!r}, which {index.name} "
                    + (f"puts in {mapped}" if mapped else "does not list")
                )
            tensors[name] = info
            files[name] = ckpt.path
    lost = [n for n in weight_map if n not in files]
    if lost:
        raise RunFormatError(
            f"{folder / weight_map[lost[0]]}: has no tensor {lost[0]!r}, which {index.name} "
            "puts in it"
        )
    return Checkpoint(path=folder, size=size, tensors=tensors, metadata=metadata, files=files)


# --------------------------------------------------------------------------- run layouts


def locate_checkpoints(path: Path, names: list[str]) -> RunLayout | None:
    """The layout of folder ``path`` (without ``run.json``) when it is a checkpoint-folder run
    or one sharded checkpoint; None when it is a plain run (or holds nothing).

    Checkpoint subfolders make a checkpoint-folder run even when the folder also holds one
    checkpoint of its own: that is where the Trainer's final ``save_model`` goes, a copy of
    the last or of the best checkpoint, which has no place in the step order.
    """
    listing = _listing(path, names)
    if _may_hold_checkpoint_folders(listing):
        levels = _checkpoint_subfolders(path)
        if levels:
            return RunLayout(
                kind="checkpoints",
                manifest=None,
                levels=tuple(p for _, p in levels),
                init=None,
                rewind=None,
                labels=tuple(name for name, _ in levels),
            )
    if listing.indexes or (len(listing.safetensors) > 1 and _holds_one_checkpoint(listing)):
        # Shards are one level, never several (a missing index is reported on reading).
        return RunLayout("checkpoint", None, (path,), None, None, labels=(path.name,))
    return None


def _may_hold_checkpoint_folders(listing: _Listing) -> bool:
    # Several loose files make a plain run, whatever its subfolders hold (existing layouts
    # keep their meaning); one checkpoint of its own is the Trainer's final save.
    return not listing.manifest and (len(listing.safetensors) <= 1 or bool(listing.indexes))


def has_checkpoint_subfolders(folder: Path, names: list[str], subfolders: list[str]) -> bool:
    """Whether ``folder`` (holding files ``names`` and folders ``subfolders``) is a
    checkpoint-folder run; cheap when it has no subfolders (discovery asks of every folder)."""
    if not subfolders or not _may_hold_checkpoint_folders(_listing(folder, names)):
        return False
    return bool(_checkpoint_subfolders(folder, subfolders))


def _checkpoint_subfolders(
    path: Path, subfolders: list[str] | None = None
) -> list[tuple[str, Path]]:
    """(name, checkpoint path) of every subfolder that holds one checkpoint, in natural order
    of the names; empty when some subfolder is a run of its own (a folder of runs)."""
    if subfolders is None:
        try:
            subfolders = [e.name for e in os.scandir(path) if e.is_dir()]
        except OSError:
            return []
    found = []
    for name in sorted(subfolders, key=natural_key):
        if name.startswith("."):
            continue
        sub = path / name
        try:
            listing = _listing(sub)
        except RunFormatError:
            continue
        if not listing.safetensors and not listing.indexes and not listing.manifest:
            if _holds_checkpoints_below(sub):
                return []  # e.g. a base model beside a Trainer output/: a folder of runs
            continue  # logs, configs: not a checkpoint, not a run
        if not _holds_one_checkpoint(listing):
            return []
        single = len(listing.safetensors) == 1 and not listing.indexes
        found.append((name, sub / listing.safetensors[0] if single else sub))
    return found


def _holds_checkpoints_below(folder: Path) -> bool:
    """Whether a subfolder of ``folder`` holds checkpoints or a run (one level down only:
    the Trainer's ``runs/`` of TensorBoard logs stays cheap to rule out)."""
    try:
        subs = [e.path for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return False
    for sub in subs:
        try:
            listing = _listing(Path(sub))
        except RunFormatError:
            continue
        if listing.safetensors or listing.indexes or listing.manifest:
            return True
    return False


def single_checkpoint(path: Path) -> RunLayout:
    """A checkpoint file given where a run is expected: a run of one level."""
    return RunLayout("checkpoint", None, (path,), None, None, labels=(path.name,))


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class ReferenceMatch:
    """Which prunable tensors of a run a reference gives signs for.

    ``label`` is ``init``, ``rewind`` or the path as given; ``skipped`` maps each prunable
    tensor left out to the reason (absent from the reference, or another shape there).
    """

    label: str
    checkpoint: Checkpoint
    compared: tuple[str, ...]
    skipped: dict[str, str]
    external: bool


def match_reference(
    label: str, ref: Checkpoint, level0: Checkpoint, prunable, run_label: str
) -> ReferenceMatch:
    """Match a reference from outside the run by tensor name; a run may hold tensors the
    reference lacks (a new head), which are skipped, but at least one must match."""
    compared, skipped = [], {}
    for name in prunable:
        info = ref.tensors.get(name)
        if info is None:
            skipped[name] = "not in the reference"
            continue
        want = level0.tensors[name]
        if info.shape != want.shape:
            skipped[name] = f"{info.shape_text} in the reference, {want.shape_text} in the run"
            continue
        if info.dtype not in WEIGHT_DTYPES:
            raise RunFormatError(
                f"{ref.path}: tensor {name!r} has dtype {info.dtype}; "
                "signscope reads F16, BF16, F32 and F64 weights"
            )
        compared.append(name)
    if not compared:
        ours = next(iter(prunable), None)
        theirs = [n for n, i in ref.tensors.items() if len(i.shape) >= 2][:1]
        hint = f" (the run has e.g. {ours!r}" if ours else " (the run has no prunable tensor"
        hint += f", the reference {theirs[0]!r})" if theirs else ")"
        raise RunFormatError(
            f"{ref.path}: none of the prunable tensors of {run_label} is in this reference "
            f"with the same shape{hint}; nothing to compare"
        )
    return ReferenceMatch(label, ref, tuple(compared), skipped, external=True)
