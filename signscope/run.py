"""One run opened for inspection: its levels, references, layers and metrics.

Opening a run reads the manifest and every safetensors *header* and checks that the levels
agree with each other (same tensors, dtypes and shapes) and with the references, so a
damaged or mixed-up run fails at once with a message that names the file, before any number
is computed. Tensor data is read only when a metric asks for it, chunk by chunk.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import polars as pl

from signscope.checkpoints import ReferenceMatch, match_reference, read_checkpoint, step_of
from signscope.display import printable
from signscope.errors import RunFormatError, UsageError
from signscope.layout import locate_run
from signscope.reader import (
    Checkpoint,
    batchnorm_layers,
    check_reference,
    check_same_tensors,
    prunable_tensors,
    read_header,
)
from signscope.runformat import RunLayout, method_label, recorded_float

REFERENCES = ("init", "rewind")
# What ``reference`` arguments accept: a name above, or a checkpoint file or folder.
Reference = str | os.PathLike


class Run:
    """A signscope run, a plain folder of checkpoints, a folder of checkpoint folders or a
    single checkpoint (SPEC section 2).

    ``label`` is the path exactly as the user gave it; it fills the ``run`` column of every
    table so that output rows can be matched to command-line arguments.
    """

    def __init__(self, path: str | os.PathLike, label: str | None = None) -> None:
        if not os.fspath(path):  # Path("") would silently mean the current folder
            raise RunFormatError("empty path: give the run folder to read")
        # The label is printed and stored in tables; the path keeps a name's undecodable bytes.
        self.label = printable(str(path) if label is None else label)
        self.path = Path(path)
        layout: RunLayout = locate_run(self.path)
        self.kind = layout.kind
        self._layout = layout
        manifest = layout.manifest or {}
        self._manifest = manifest
        config = manifest.get("config")
        self.config: dict = dict(config) if isinstance(config, dict) else {}
        self._manifest_levels = {
            row["level"]: row
            for row in manifest.get("levels") or []
            if isinstance(row, dict) and isinstance(row.get("level"), int)
        }
        self._ckpts = [read_checkpoint(p) for p in layout.levels]
        first = self._ckpts[0]
        for other in self._ckpts[1:]:
            check_same_tensors(first, other)
        self.prunable: dict[str, str | None] = prunable_tensors(first)
        self._refs: dict[str, Checkpoint] = {}
        for which, ref_path in (("init", layout.init), ("rewind", layout.rewind)):
            if ref_path is not None:
                ref = read_header(ref_path)
                check_reference(ref, first, self.prunable)
                self._refs[which] = ref
        self._external: dict[str, Checkpoint] = {}
        self._alive: dict[int, dict[str, int]] = {}

    def __repr__(self) -> str:
        return f"Run({self.label!r}, kind={self.kind!r}, levels={len(self.levels)})"

    # ------------------------------------------------------------------ structure
    @property
    def levels(self) -> list[int]:
        return list(range(len(self._ckpts)))

    @cached_property
    def method(self) -> str | None:
        """The method label (``imp``, ``lrr``, ``lrr+bn-rewind``, ...): see
        :func:`signscope.runformat.method_label`."""
        return method_label(self._manifest, (c.metadata for c in self._ckpts))

    @cached_property
    def batchnorm(self) -> list[str]:
        return batchnorm_layers(self._ckpts[0])

    def checkpoint(self, level: int) -> Checkpoint:
        return self._ckpts[self._check_level(level)]

    def numel(self, name: str) -> int:
        return self._ckpts[0].tensors[name].numel

    def architecture(self) -> dict[str, tuple[int, ...]]:
        """Prunable tensor name -> shape; runs compare only when these are equal."""
        return {n: self._ckpts[0].tensors[n].shape for n in self.prunable}

    @property
    def level_labels(self) -> list[str]:
        """Each level's file name, or its checkpoint folder's name in a checkpoint-folder run."""
        return list(self._layout.labels) or [c.path.name for c in self._ckpts]

    @property
    def steps(self) -> list[int | None]:
        """Each level's training step, read from its checkpoint folder's name
        (``checkpoint-500``); None in runs whose levels are not checkpoint folders."""
        if self.kind != "checkpoints":
            return [None] * len(self._ckpts)
        return [step_of(label) for label in self.level_labels]

    def reference(self, which: Reference = "init") -> Checkpoint:
        """The checkpoint whose signs flips start from: ``init``, ``rewind``, or the checkpoint
        file or folder at path ``which`` (outside the run, e.g. a base model)."""
        if not (isinstance(which, str) and which in REFERENCES):
            key = os.fspath(which)
            if key not in self._external:
                self._external[key] = read_checkpoint(_reference_path(key))
            return self._external[key]
        ref = self._refs.get(which)
        if ref is None and self.kind in ("checkpoints", "checkpoint"):
            raise RunFormatError(
                f"{self.path}: checkpoints hold no {which} reference; flips need the signs "
                "of one: give --reference PATH, a checkpoint file or folder such as the base "
                "model"
            )
        if ref is None:
            wanted = (
                (
                    "init.safetensors"
                    if self.kind == "signscope"
                    else "a file whose name starts with 'init'"
                )
                if which == "init"
                else "rewind.safetensors"
            )
            hint = ""
            if which == "init" and "rewind" in self._refs:
                hint = "; --reference rewind counts the flips from the rewind point instead"
            raise RunFormatError(
                f"{self.path}: no {which} reference ({wanted}); "
                f"flips need the signs of the reference{hint}; --reference PATH takes them "
                "from a checkpoint outside the run, such as the base model"
            )
        return ref

    def match_reference(self, which: Reference = "init") -> ReferenceMatch:
        """The reference and the prunable tensors it is compared on: all of them for
        ``init``/``rewind`` (checked when the run was opened); for a checkpoint outside the
        run, those it holds with the run's shape (matched by name, at least one)."""
        ref = self.reference(which)
        if isinstance(which, str) and which in REFERENCES:
            return ReferenceMatch(which, ref, tuple(self.prunable), {}, external=False)
        return match_reference(os.fspath(which), ref, self._ckpts[0], self.prunable, self.label)

    def _check_level(self, level: int | None) -> int:
        if level is None:
            return len(self._ckpts) - 1
        try:
            index = operator.index(level)
        except TypeError:
            index = -1
        if isinstance(level, bool) or not 0 <= index < len(self._ckpts):
            raise UsageError(f"level {level}: {self.label} has levels 0..{len(self._ckpts) - 1}")
        return index

    def levels_upto(self, at_level: int | None) -> list[int]:
        return list(range(self._check_level(at_level) + 1))

    def test_acc(self, level: int) -> float | None:
        meta = self._ckpts[level].metadata.get("test_acc")
        if meta is not None:
            return recorded_float(meta)
        return recorded_float(self._manifest_levels.get(level, {}).get("test_acc"))

    def alive(self, level: int) -> dict[str, int]:
        """Alive weights per prunable tensor at ``level`` (masks, or nonzero without masks)."""
        level = self._check_level(level)
        if level not in self._alive:
            from signscope.metrics.layers import alive_counts

            self._alive[level] = alive_counts(self, level)
        return self._alive[level]

    # ------------------------------------------------------------------ tables
    def summary(self) -> pl.DataFrame:
        """run, level, density, alive, test_acc: one row per level."""
        from signscope.metrics.layers import summary_table

        return summary_table(self)

    def layers(self, level: int | None = None) -> pl.DataFrame:
        """Every tensor of the level file with shape, dtype and (prunable ones) alive/density."""
        from signscope.metrics.layers import layers_table

        return layers_table(self, self._check_level(level))

    def flips(
        self,
        at_level: int | None = None,
        reference: Reference = "init",
        per_layer: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, pl.DataFrame]:
        """Sign flips (SPEC section 3): the ``levels``, ``last_flip`` and ``flip_count`` tables,
        plus ``reference`` (tensors compared and skipped) for a reference outside the run."""
        from signscope.metrics.flips import flip_tables

        return flip_tables(self, at_level, reference, per_layer, progress)

    def bn(self, level: int | None = None) -> dict[str, pl.DataFrame]:
        """BatchNorm gamma statistics and histogram per BN layer at ``level`` (default last)."""
        from signscope.metrics.bn import bn_tables

        return bn_tables(self, self._check_level(level))

    def checkpoints(self) -> pl.DataFrame:
        """run, level, checkpoint, step, files, size: where each level comes from (size in
        bytes over all its files; step from a checkpoint folder's name, else null)."""
        rows = [
            {
                "run": self.label,
                "level": level,
                "checkpoint": label,
                "step": step,
                "files": len(set(ckpt.files.values())) if ckpt.files else 1,
                "size": ckpt.size,
            }
            for level, (label, step, ckpt) in enumerate(
                zip(self.level_labels, self.steps, self._ckpts, strict=True)
            )
        ]
        schema = {
            "run": pl.String,
            "level": pl.Int64,
            "checkpoint": pl.String,
            "step": pl.Int64,
            "files": pl.Int64,
            "size": pl.Int64,
        }
        return pl.DataFrame(rows, schema=schema)

    def show(self, level: int | None = None) -> dict[str, pl.DataFrame]:
        """``config`` (key, value), ``checkpoints``, ``levels`` (= summary) and ``layers`` at
        ``level``."""
        from signscope.metrics.layers import config_table

        return {
            "config": config_table(self.config),
            "checkpoints": self.checkpoints(),
            "levels": self.summary(),
            "layers": self.layers(level),
        }


def _reference_path(given: str) -> Path:
    path = Path(given)
    if not path.exists():
        raise RunFormatError(
            f"{given}: no such file or folder (a reference is init, rewind, or a checkpoint "
            "file or folder)"
        )
    return path


def open_run(path: str | os.PathLike | Run) -> Run:
    """Open the run in folder ``path``; raises RunFormatError when it cannot be read."""
    if isinstance(path, Run):
        return path
    return Run(path)
