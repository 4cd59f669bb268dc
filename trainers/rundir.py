"""The run folder as a writer finds it and leaves it (SPEC section 2).

- :class:`RunFolder` creates the folder, holds its lock (:mod:`trainers.runlock`) while the
  block runs, and after a failure before the first level file removes what was written, so
  that a retry is not turned away by files that hold nothing yet.
- :meth:`RunFolder.prepare` decides what happens to the files already there. ``resume``
  continues a run after its completed levels, or starts one that has not completed a level
  (its folder holds only signscope's own files); ``force`` replaces signscope's own files and
  refuses when other checkpoints share the folder.

signscope's own files are those :func:`signscope.runformat.is_run_file` names: run.json,
metrics.jsonl, init, rewind, level_NNN and their temporaries. Everything else is the user's.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from signscope.errors import SignscopeError, UsageError, listed
from signscope.runformat import (
    LEVEL_RE,
    LOCK_FILE,
    METRICS,
    atomic_write_bytes,
    is_run_file,
    is_temporary,
)
from trainers.runlock import run_lock


def check_modes(resume: bool, force: bool) -> None:
    """``--resume`` keeps what is in the folder and ``--force`` replaces it."""
    if resume and force:
        raise UsageError("--resume keeps the run in --out and --force replaces it: give one")


@dataclass(frozen=True)
class Contents:
    """What a run folder holds, the lock file aside."""

    own: tuple[Path, ...]  # files signscope writes
    others: tuple[Path, ...]

    @property
    def levels(self) -> list[Path]:
        return [p for p in self.own if LEVEL_RE.match(p.name)]

    @property
    def checkpoints(self) -> list[Path]:
        """Checkpoints that are not signscope's: a plain run's levels to anyone who reads it."""
        return [p for p in self.others if p.name.endswith(".safetensors")]


def contents(out: Path) -> Contents:
    if not out.is_dir():
        return Contents((), ())
    entries = sorted(p for p in out.iterdir() if p.name != LOCK_FILE)
    own = tuple(p for p in entries if is_run_file(p.name) and p.is_file())
    return Contents(own, tuple(p for p in entries if p not in own))


def _remove(paths) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def prepare_new(out: Path, *, force: bool, hint: str) -> None:
    """Make ``out`` (an existing folder) ready for a new run: empty, or with ``force`` rid of
    signscope's own files. ``hint`` says what to pass when the folder is not empty."""
    found = contents(out)
    if not (found.own or found.others):
        return
    if not force:
        raise UsageError(f"--out {out}: folder is not empty; {hint}")
    if found.checkpoints:
        theirs = listed(p.name for p in found.checkpoints)
        raise UsageError(
            f"--out {out}: --force replaces only the files signscope wrote, and the folder "
            f"also holds other checkpoints ({theirs}); move them or choose another folder"
        )
    _remove(found.own)


class RunFolder:
    """``out`` created if needed and locked while the ``with`` block runs (by the process that
    writes: ``owner``; the others of a torchrun job only read). ``resume`` and ``force`` are
    what the user asked for; :meth:`prepare` acts on them."""

    def __init__(
        self,
        out: Path,
        owner: bool = True,
        *,
        resume: bool = False,
        force: bool = False,
        offers_resume: bool = True,
    ) -> None:
        self.out = out
        self.owner = owner
        self.resume = resume
        self.force = force
        self.offers_resume = offers_resume  # whether the command has --resume to suggest
        self._created = False
        self._writing = False
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RunFolder:
        if not self.owner:
            return self
        out = self.out
        try:
            if out.exists() and not out.is_dir():
                raise UsageError(f"--out {out}: exists and is not a folder")
            self._created = not out.exists()
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SignscopeError(
                f"--out {out}: cannot create the folder ({exc.strerror})"
            ) from None
        try:
            self._stack.enter_context(run_lock(out))
        except BaseException:
            self._remove_if_created()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.owner:
            return
        try:
            if exc_type is not None and self._writing and not contents(self.out).levels:
                # Nothing of value yet (init, run.json of a run without a level): leave nothing
                # that a retry with other settings would have to --force away.
                _remove(contents(self.out).own)
        finally:
            self._stack.close()
            self._remove_if_created()

    def _remove_if_created(self) -> None:
        if self._created and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()

    def prepare(self, done: list[int]) -> None:
        """Ready the folder for training after the levels ``done`` (read before, under the
        lock): continue them, start a run that has not started, or start afresh. Call it
        once nothing else can fail before the first write."""
        out = self.out
        if done:
            _remove(p for p in contents(out).own if is_temporary(p.name))
            _keep_metrics(out, done)
        elif self.resume:
            found = contents(out)
            if found.others:
                raise UsageError(
                    f"--resume {out}: no signscope run to continue there (the folder holds "
                    f"{listed(p.name for p in found.others)})"
                )
            if found.levels:
                raise UsageError(
                    f"--resume {out}: level_000.safetensors is missing, so the run cannot "
                    "continue; --force replaces it"
                )
            _remove(found.own)  # a run that never completed a level: start it afresh
        else:
            hint = (
                "pass --resume to continue that run or --force to replace it"
                if self.offers_resume
                else "pass --force to replace the run in it"
            )
            prepare_new(out, force=self.force, hint=hint)
        self._writing = True

    def finish(self) -> None:
        """Remove temporaries that killed writers left (none of this process's remain)."""
        _remove(p for p in contents(self.out).own if is_temporary(p.name))


def _keep_metrics(out: Path, levels: list[int]) -> None:
    """Keep the metrics rows of ``levels``: the epochs of an interrupted level are trained
    again, and their old rows would be duplicated."""
    path = out / METRICS
    if not path.exists():
        return
    keep = set(levels)
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    kept = [line + b"\n" for line in lines if json.loads(line).get("level") in keep]
    atomic_write_bytes(path, b"".join(kept))
