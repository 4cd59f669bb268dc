"""How far a run's training has come, from the files the trainer writes (SPEC section 2).

``metrics.jsonl`` gains one line per epoch and is rewritten after each one, so its mtime is
the time of the last epoch; ``run.json`` says whether the run is ``complete`` and how many
levels and epochs its config asks for. :class:`EpochLog` follows ``metrics.jsonl`` reading
only what was added since the last look; :class:`Training` derives the current level and
epoch, the ETA and whether the run is stalled. The TUI shows these; nothing here imports
torch, numpy or polars.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# A run counts as stalled when its last epoch is older than STALL_EPOCHS typical epochs, and
# never sooner than STALL_MIN_S: a slow evaluation or the pruning step between two levels takes
# longer than one epoch. Before the first epoch there is no duration to go by, so the wait is
# STALL_FIRST_S (data loading and the first epoch of an ImageNet run take most of an hour).
STALL_EPOCHS = 3
STALL_MIN_S = 600.0
STALL_FIRST_S = 3600.0
# Epochs whose durations the ETA and the stall threshold average (median: evaluation epochs
# take longer than the others).
RECENT_EPOCHS = 10

Stamp = tuple[int, int, int]  # inode, size, mtime_ns: a file is unchanged while these are


def stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Epoch(NamedTuple):
    """One line of ``metrics.jsonl``; a value the line lacks (or that is not a number) is None."""

    level: int
    epoch: int
    lr: float | None
    train_loss: float | None
    train_acc: float | None
    test_acc: float | None
    seconds: float | None


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_epoch(line: bytes) -> Epoch | None:
    """The epoch on one line, or None for a line that is not one (blank, not JSON, no level)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    level, epoch = obj.get("level"), obj.get("epoch")
    if type(level) is not int or type(epoch) is not int:
        return None
    return Epoch(
        level,
        epoch,
        *(_number(obj.get(k)) for k in ("lr", "train_loss", "train_acc", "test_acc", "seconds")),
    )


class EpochLog:
    """``metrics.jsonl`` of one run, read incrementally.

    The trainer appends by rewriting the whole file under a temporary name, so the inode
    changes every epoch; what tells an append from a rewrite (``--resume`` drops the lines of
    an interrupted level) is whether the last bytes already read are still where they were.
    Only whole lines are read: a line still being written by some other writer waits for its
    newline.
    """

    _TAIL = 64  # bytes before the read offset that must be unchanged for an append

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.stamp: Stamp | None = None
        self._offset = 0
        self._tail = b""
        self._epochs: list[Epoch] = []
        self._snapshot: tuple[Epoch, ...] = ()
        self.bytes_read = 0  # in total, for tests and benchmarks

    @property
    def epochs(self) -> tuple[Epoch, ...]:
        return self._snapshot

    @property
    def modified(self) -> float | None:
        """When the file was last written (seconds since the epoch), as of the last refresh."""
        return None if self.stamp is None else self.stamp[2] / 1e9

    def refresh(self, stamp: Stamp | None = None) -> bool:
        """Read what was added since the last call; True when the epochs changed.

        ``stamp`` is the file's stamp if the caller has just stat'ed it; when it equals the
        last one seen, the file is not opened at all.
        """
        if stamp is not None and stamp == self.stamp:
            return False
        try:
            with open(self.path, "rb") as fh:
                current = stamp_of(os.fstat(fh.fileno()))
                if current == self.stamp:
                    return False
                return self._read(fh, current)
        except FileNotFoundError:
            self.stamp = None
            return self._reset()
        except OSError:
            return False  # unreadable for now (permissions, a network hiccup): try next time

    def _reset(self) -> bool:
        had = bool(self._epochs)
        self._offset, self._tail, self._epochs, self._snapshot = 0, b"", [], ()
        return had

    def _read(self, fh, current: Stamp) -> bool:
        size = current[1]
        changed = False
        if self._offset:
            appended = False
            if size >= self._offset:
                fh.seek(self._offset - len(self._tail))
                appended = fh.read(len(self._tail)) == self._tail
            if not appended:
                changed = self._reset()
        fh.seek(self._offset)
        data = fh.read(max(0, size - self._offset))
        self.bytes_read += len(data)
        self.stamp = current
        whole = data[: data.rfind(b"\n") + 1]
        if not whole:
            return changed
        self._offset += len(whole)
        self._tail = (self._tail + whole)[-self._TAIL :]
        added = [e for e in map(parse_epoch, whole.splitlines()) if e is not None]
        if added:
            self._epochs.extend(added)
            changed = True
        if changed:
            self._snapshot = tuple(self._epochs)
        return changed


def read_epochs(run_dir: str | os.PathLike) -> tuple[Epoch, ...]:
    """Every epoch recorded in ``run_dir/metrics.jsonl`` (empty when there is none)."""
    from signscope.runformat import METRICS

    log = EpochLog(Path(run_dir) / METRICS)
    log.refresh()
    return log.epochs


def _int(value) -> int | None:
    return value if type(value) is int and value > 0 else None


@dataclass(frozen=True)
class Training:
    """Where the training of a signscope run stands.

    ``history`` holds the epochs of ``metrics.jsonl`` for runs that are followed (still
    training); it is None for finished runs, whose log is read only when it is shown.
    ``updated`` is when the trainer last wrote: the last epoch, or the run's start before it.
    """

    complete: bool
    levels_total: int | None  # config ``levels``: how many levels the run will have
    epochs_per_level: int | None  # config ``epochs``
    levels_done: int  # level files written
    history: tuple[Epoch, ...] | None = None
    updated: float | None = None

    @property
    def active(self) -> bool:
        """Not finished: being trained, or stalled."""
        return not self.complete

    def position(self) -> tuple[int, int]:
        """(level, epoch) of the last epoch done; epoch 0 of the next level once its level
        file is written, and (0, 0) before the first epoch."""
        last = self.history[-1] if self.history else None
        if last is None or self.levels_done > last.level:
            return (self.levels_done, 0)
        return (last.level, last.epoch)

    def epoch_seconds(self) -> float | None:
        """A typical epoch's duration: the median of the last RECENT_EPOCHS epochs."""
        recent = sorted(e.seconds for e in (self.history or ())[-RECENT_EPOCHS:] if e.seconds)
        if not recent:
            return None
        # The median, without importing statistics (fractions, decimal) into the first screen.
        n = len(recent)
        return (recent[(n - 1) // 2] + recent[n // 2]) / 2

    def remaining_epochs(self) -> int | None:
        if self.levels_total is None or self.epochs_per_level is None:
            return None
        level, epoch = self.position()
        done = level * self.epochs_per_level + epoch
        return max(0, self.levels_total * self.epochs_per_level - done)

    def eta(self, now: float) -> float | None:
        """Seconds until the last level is written, at the pace of the recent epochs (the
        pruning steps between levels are not counted); None when unknown or finished."""
        if self.complete:
            return None
        remaining, per_epoch = self.remaining_epochs(), self.epoch_seconds()
        if remaining is None or per_epoch is None or self.updated is None:
            return None
        return max(0.0, self.updated + remaining * per_epoch - now)

    def stall_after(self) -> float:
        """Seconds without an epoch after which the run counts as stalled."""
        per_epoch = self.epoch_seconds()
        if per_epoch is None:
            return STALL_FIRST_S
        return max(STALL_MIN_S, STALL_EPOCHS * per_epoch)

    def since_update(self, now: float) -> float | None:
        return None if self.updated is None else max(0.0, now - self.updated)

    def state(self, now: float) -> str:
        """``complete``, ``training`` or ``stalled``."""
        if self.complete:
            return "complete"
        age = self.since_update(now)
        return "stalled" if age is not None and age > self.stall_after() else "training"


def training_of(
    manifest: dict,
    levels_done: int,
    log: EpochLog | None = None,
    manifest_modified: float | None = None,
) -> Training:
    """The :class:`Training` of a run from its parsed ``run.json`` and (when followed) its log.

    Only ``"complete": false`` means unfinished: older manifests without the key, and runs
    imported from other tools (``config.imported_from``), whose training happened elsewhere,
    are never followed.
    """
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    complete = manifest.get("complete") is not False or "imported_from" in config
    updated = log.modified if log is not None and log.epochs else None
    return Training(
        complete=complete,
        levels_total=_int(config.get("levels")),
        epochs_per_level=_int(config.get("epochs")),
        levels_done=levels_done,
        history=None if log is None else log.epochs,
        updated=updated if updated is not None else manifest_modified,
    )


def duration_text(seconds: float, short: bool = False) -> str:
    """``42 s``, ``7 min``, ``3 h 05 min``, ``2 d 4 h``; with ``short`` (for a tree line)
    ``42s``, ``7m``, ``3h05``, ``2d4h``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s" if short else f"{s} s"
    if s < 3600:
        return f"{s // 60}m" if short else f"{s // 60} min"
    if s < 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours}h{minutes:02d}" if short else f"{hours} h {minutes:02d} min"
    days, hours = divmod(s // 3600, 24)
    return f"{days}d{hours}h" if short else f"{days} d {hours} h"
