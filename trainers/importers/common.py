"""What every importer shares: safe loading, state-dict clean-up, and writing the run.

An importer only *plans*: it lists the source's checkpoints in level order and says how to
read each one (:class:`ImportPlan`). :func:`write_run` then streams the plan level by level
into the signscope run format (SPEC section 2), so at most one level's tensors are in memory
and every problem with the source is reported as a :class:`RunFormatError` naming the file.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from signscope.errors import RunFormatError, UsageError
from signscope.runformat import INIT_FILE, REWIND_FILE, level_filename, write_manifest
from trainers.checkpoint import (
    alive_and_density,
    load_file,
    split_masks,
    write_level,
    write_reference,
)
from trainers.rundir import RunFolder

State = dict[str, torch.Tensor]
Masks = dict[str, torch.Tensor]

# Wrappers that training scripts commonly put around a state dict.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
# torch names the global its restricted unpickler refused ("GLOBAL posix.system"), in wording
# that changes between releases; the name itself is the useful part.
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_UNPICKLER = "WeightsUnpickler error:"


class UnsafeCheckpointError(RunFormatError):
    """``torch.load(weights_only=True)`` refused the file: it pickles code or objects."""

    def __init__(self, path: Path, refused: str) -> None:
        self.refusal = f"torch.load(weights_only=True) refuses to load GLOBAL {refused}"
        super().__init__(
            f"{path}: {self.refusal}: the file holds code or objects, not only tensors, and "
            "signscope never unpickles those. If it is yours, re-save it with "
            "torch.save(model.state_dict(), path)"
        )


def load_checkpoint(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers, never code.

    A file that pickles anything else (a model object, a custom class, a call) is refused
    with :class:`UnsafeCheckpointError`, which names what torch refused and says how to
    re-save it, instead of being unpickled.
    """
    try:
        # torch warns about unusual pickle protocols on stderr; the error below says it all.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunFormatError(f"{path}: file not found") from None
    except Exception as exc:
        text = str(exc)
        refused = _REFUSED_GLOBAL.search(text)
        if refused:
            raise UnsafeCheckpointError(path, refused.group(1)) from None
        raise RunFormatError(
            f"{path}: not a PyTorch checkpoint that torch.load(weights_only=True) can read "
            f"({_reason(exc)})"
        ) from None


def _reason(exc: Exception) -> str:
    """The part of torch's message that is about this file. torch puts it after its general
    advice (first paragraph) and before a pointer to the documentation (last one)."""
    text = str(exc)
    if _UNPICKLER in text:
        text = text.rsplit(_UNPICKLER, 1)[1]
    paragraphs = [
        " ".join(p.split())
        for p in re.split(r"\n\s*\n", text)
        if p.strip() and not p.strip().startswith("Check the documentation")
    ]
    reason = paragraphs[-1] if paragraphs else type(exc).__name__
    return reason if len(reason) <= 200 else reason[:197] + "..."


def state_dict_of(obj: Any, path: Path) -> State:
    """The ``{name: tensor}`` mapping in a loaded checkpoint (unwraps ``{"state_dict": ...}``)."""
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if not all(isinstance(k, str) for k in obj):
            raise RunFormatError(f"{path}: state dict has non-string keys")
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                return state_dict_of(obj[key], path)
        others = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))[:5]
        raise RunFormatError(
            f"{path}: not a state dict "
            f"(entries that are not tensors: {', '.join(others) or 'none'})"
        )
    raise RunFormatError(f"{path}: holds a {type(obj).__name__}, expected a state dict of tensors")


def strip_prefix(state: Mapping[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """Drop the ``module.`` that ``DataParallel`` puts before every name, so imported runs use
    the same names as runs trained without it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def to_mask(
    t: torch.Tensor, path: Path, name: str, shape: torch.Size | None = None
) -> torch.Tensor:
    """A bool mask from a 0/1 tensor of any dtype; anything else is an error, not a guess."""
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise RunFormatError(
            f"{path}: mask of {name} has shape {tuple(t.shape)}, the weight has {tuple(shape)}"
        )
    if t.dtype != torch.bool and bool(((t != 0) & (t != 1)).any()):
        raise RunFormatError(f"{path}: mask of {name} holds values other than 0 and 1")
    return t != 0


@dataclass
class LevelData:
    """One level as read from the source: full state dict, bool masks, accuracy if known."""

    state: State
    masks: Masks
    test_acc: float | None = None
    mask_source: Path | None = None  # when the masks come from their own file


@dataclass
class LevelSource:
    level: int  # the source's number for it (levels are written as 0, 1, ... in plan order)
    source: Path  # the file the trained weights come from
    read: Callable[[], LevelData]


@dataclass
class RefSource:
    """A reference point (init or rewind): where it comes from and how to read it."""

    source: Path
    read: Callable[[], State]


@dataclass
class ImportPlan:
    """What an importer found in ``src``; nothing has been written yet."""

    kind: str
    src: Path
    levels: list[LevelSource]
    init: RefSource | None = None
    rewind: RefSource | None = None
    method: str | None = None  # known from the source itself (e.g. OpenLTH lottery = imp)
    seed: int | None = None
    config: dict = field(default_factory=dict)  # model, dataset, ... when the source says
    details: dict = field(default_factory=dict)  # recorded under config.imported_from
    source_config: dict | None = None
    complete: bool = True
    notes: list[str] = field(default_factory=list)
    # Reads one checkpoint of this kind as a reference (for ``--init FILE``).
    read_reference: Callable[[Path], State] | None = None


def reference_from_file(path: Path, plan: ImportPlan) -> RefSource:
    """``--init FILE``: a safetensors file, or a checkpoint in the importer's own format."""
    if not path.is_file():
        raise RunFormatError(f"--init {path}: file not found")
    if path.suffix == ".safetensors":
        return RefSource(path, lambda: split_masks(load_file(path)[0])[0])
    reader = plan.read_reference or (lambda p: strip_prefix(state_dict_of(load_checkpoint(p), p)))
    return RefSource(path, lambda: reader(path))


def _shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state.items()}


def check_same_layout(
    expected: dict[str, tuple], state: Mapping[str, torch.Tensor], path: Path, first: Path
) -> None:
    """Every level and reference must hold the same tensors with the same shapes."""
    got = _shapes(state)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
        if extra:
            parts.append(f"has extra {', '.join(extra[:3])}" + (" ..." if len(extra) > 3 else ""))
        raise RunFormatError(f"{path}: tensor names differ from {first} ({'; '.join(parts)})")
    for name, shape in got.items():
        if shape != expected[name]:
            raise RunFormatError(
                f"{path}: {name} has shape {shape}, but {expected[name]} in {first}"
            )


def _display(path: Path, src: Path) -> str:
    try:
        return str(path.relative_to(src))
    except ValueError:
        return str(path)


def write_run(
    plan: ImportPlan,
    out: Path,
    *,
    force: bool = False,
    method: str | None = None,
    seed: int | None = None,
) -> tuple[list[dict], list[str]]:
    """Write ``plan`` as a signscope run in ``out``; return the per-level rows and the notes
    recorded in run.json.

    Files are written one level at a time through :mod:`trainers.checkpoint` (temporary
    name + rename). If the source turns out to be broken half way, the files written so far
    are removed again, so a failed import never leaves something that looks like a run.
    """
    if not plan.levels:
        raise RunFormatError(f"{plan.src}: no checkpoints found")
    if out.resolve() == plan.src.resolve():
        raise UsageError(f"--out {out}: must not be the source folder")
    with RunFolder(out, force=force, offers_resume=False) as folder:
        folder.prepare([])
        written: list[Path] = []
        try:
            return _write_all(
                plan,
                out,
                written,
                method or plan.method or "unknown",
                plan.seed if seed is None else seed,
            )
        except BaseException:
            for p in written:
                p.unlink(missing_ok=True)
            raise


def check_finite(state: Mapping[str, torch.Tensor], masks: Masks, source: Path) -> None:
    """NaN or inf in a tensor is refused at import, naming the source file: later, the
    inspection commands could only name the imported copy. Pruned entries do not count
    (they are written as zeros)."""
    for name, t in state.items():
        if t.is_floating_point():
            values = t[masks[name]] if name in masks else t
            if not bool(torch.isfinite(values).all()):
                raise RunFormatError(f"{source}: tensor {name} holds NaN or inf values")


def _write_all(
    plan: ImportPlan, out: Path, written: list[Path], method: str, seed: int | None
) -> tuple[list[dict], list[str]]:
    rows: list[dict] = []
    layout: dict[str, tuple] | None = None
    masked: set[str] | None = None
    first = plan.levels[0].source
    # The source's levels become levels 0, 1, ... (a run has no gaps); each keeps its number.
    for level, lvl in enumerate(plan.levels):
        data = lvl.read()
        if layout is None:
            layout, masked = _shapes(data.state), set(data.masks)
        check_same_layout(layout, data.state, lvl.source, first)
        mask_source = data.mask_source or lvl.source
        if set(data.masks) != masked:
            odd = sorted(set(data.masks) ^ masked)
            raise RunFormatError(
                f"{mask_source}: masks cover other tensors than at level 0 ({', '.join(odd[:3])})"
            )
        for name, m in data.masks.items():
            if name not in data.state:
                raise RunFormatError(f"{mask_source}: mask for {name}, which {lvl.source} lacks")
            data.masks[name] = to_mask(m, mask_source, name, data.state[name].shape)
        check_finite(data.state, data.masks, lvl.source)
        rel = _display(lvl.source, plan.src)
        path = write_level(
            out,
            level,
            data.state,
            data.masks,
            method,
            data.test_acc,
            source=rel,
            source_level=lvl.level,
        )
        written.append(path)
        alive, density = alive_and_density(data.masks)
        rows.append(
            {
                "level": level,
                "file": level_filename(level),
                "source": rel,
                "source_level": lvl.level,
                "density": density,
                "alive": alive,
                "test_acc": data.test_acc,
            }
        )
        del data
    references: dict[str, dict | None] = {}
    for which, ref, fname in (("init", plan.init, INIT_FILE), ("rewind", plan.rewind, REWIND_FILE)):
        if ref is None:
            references[which] = None
            continue
        state = ref.read()
        check_same_layout(layout, state, ref.source, first)
        check_finite(state, {}, ref.source)
        written.append(write_reference(out, which, state))
        references[which] = {"file": fname, "source": _display(ref.source, plan.src)}
    notes = list(plan.notes)
    numbers = [r["source_level"] for r in rows]
    if numbers != list(range(len(rows))):
        notes.append(
            f"the source has levels {', '.join(map(str, numbers))}; they are levels "
            f"0-{len(rows) - 1} here (source_level in run.json)"
        )
    if references["init"] is None:
        note = (
            "the source holds no weights at initialisation, so this run has no "
            "init.safetensors; pass --init FILE to add them"
        )
        if references["rewind"] is not None:
            note += "; flips can count from the rewind point (--reference rewind)"
        notes.append(note)
    config = {
        "method": method,
        "seed": seed,
        **plan.config,
        "imported_from": {"kind": plan.kind, "source": str(plan.src.resolve()), **plan.details},
    }
    if plan.source_config is not None:
        config["source_config"] = plan.source_config
    keys = ("level", "density", "alive", "test_acc", "source", "source_level")
    summary = [{k: r[k] for k in keys} for r in rows]
    write_manifest(out, config, summary, plan.complete, references=references, notes=notes)
    written.append(out / "run.json")
    return rows, notes
