"""Find every run below some paths, cheaply, and keep the list current (SPEC section 2).

A folder holding ``run.json`` is a signscope run; a folder of checkpoint folders (the
Hugging Face Trainer's ``checkpoint-N/``) a checkpoint-folder run; any other folder holding
``*.safetensors`` files is a plain run (or one sharded checkpoint). Discovery reads manifests
and safetensors *headers* only, never tensor data, so listing a folder of multi-GB ResNet50
runs takes milliseconds; the metrics are computed later, on demand, by :mod:`signscope.api`.

:class:`Watcher` repeats discovery while runs train. A poll stats folders and files and reads
only what changed: a folder is listed again only when its mtime moved, a header is read again
only when its file's inode, size or mtime did, ``metrics.jsonl`` is read from where the last
read stopped (:class:`signscope.training.EpochLog`), and a run with no changes keeps the same
:class:`FoundRun` object, so callers can tell what changed by identity.

A run that cannot be read is still returned, with ``error`` set, so that a user interface can
show it (flagged) next to the healthy ones instead of stopping at the first bad file.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from signscope.checkpoints import has_checkpoint_subfolders, read_checkpoint, step_of
from signscope.errors import RunFormatError
from signscope.layout import locate_run
from signscope.runformat import (
    LEVEL_RE,
    MANIFEST,
    METRICS,
    method_label,
    natural_key,
    read_manifest,
    recorded_float,
)
from signscope.training import EpochLog, Stamp, Training, stamp_of, training_of

# Folders that never hold runs but can be huge to walk.
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}
# A folder modified less than this long before it was listed may change again within the same
# mtime tick (coarse on some file systems), so its listing is not trusted at the next poll.
_RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class LevelInfo:
    """One checkpoint of a run, as far as its header and the manifest tell."""

    level: int
    file: str
    density: float | None = None
    test_acc: float | None = None
    stamp: Stamp | None = None  # of the file (or checkpoint folder) whose header was read
    step: int | None = None  # training step, from a checkpoint folder's name


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
    references: tuple[tuple[str, Stamp], ...] = ()  # init/rewind files and their stamps
    training: Training | None = None  # signscope runs only

    @property
    def ok(self) -> bool:
        return self.error is None

    def inputs(self, level: int | None = None) -> tuple:
        """The stamps of the files a result over levels 0..``level`` (default: every level)
        is computed from. A cache key that holds them stays valid while those files are
        unchanged: a new level changes ``inputs()`` but not ``inputs(level)`` of earlier ones."""
        levels = self.levels if level is None else self.levels[: level + 1]
        return (self.references, tuple(info.stamp for info in levels))


@dataclass(frozen=True)
class Discovery:
    """Everything found below the given paths; ``problems`` names paths that do not exist."""

    roots: tuple[str, ...]
    runs: tuple[FoundRun, ...]
    problems: tuple[str, ...] = ()


def _stat(path: Path | str) -> Stamp | None:
    try:
        return stamp_of(os.stat(path))
    except OSError:
        return None


def _describe(
    label: str, folder: Path, stamps: dict[str, Stamp], metadata: Callable[[Path, Stamp], dict]
) -> tuple[FoundRun, dict | None]:
    """Levels, method and config of the run in ``folder`` from its manifest and headers, and
    the manifest. ``stamps`` are the folder's files as just listed; ``metadata(path, stamp)``
    gives a checkpoint's header metadata (the watcher keeps it while the stamp is the same)."""

    def stamp(path: Path) -> Stamp | None:
        return stamps.get(path.name) or _stat(path)

    layout = locate_run(folder)
    manifest = layout.manifest or {}
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    summary = {
        row["level"]: row
        for row in manifest.get("levels") or []
        if isinstance(row, dict) and isinstance(row.get("level"), int)
    }
    levels, metas = [], []
    for number, (path, name) in enumerate(zip(layout.levels, layout.labels, strict=True)):
        current = stamp(path)
        meta = metadata(path, current)
        metas.append(meta)
        row = summary.get(number, {})
        levels.append(
            LevelInfo(
                level=number,
                file=name,
                # Density is counted from the masks, never read from metadata (decisions.md):
                # the manifest's is the trainer's count; a run without one shows none here.
                density=recorded_float(row.get("density")),
                test_acc=recorded_float(row.get("test_acc", meta.get("test_acc"))),
                stamp=current,
                step=step_of(name) if layout.kind == "checkpoints" else None,
            )
        )
    references = tuple(
        (ref.name, stamp(ref)) for ref in (layout.init, layout.rewind) if ref is not None
    )
    found = FoundRun(
        label=label,
        path=folder,
        kind=layout.kind,
        method=method_label(manifest, metas),
        config=dict(config),
        levels=tuple(levels),
        references=references,
    )
    return found, layout.manifest


def _unstarted(label: str, folder: Path, names) -> tuple[FoundRun, dict] | None:
    """A signscope run whose ``run.json`` says it is not complete and that has no level file
    yet: level 0 is training. (With ``complete`` true, no level file is an error.)"""
    if any(LEVEL_RE.match(n) for n in names):
        return None
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("complete") is not False:
        return None
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    return (
        FoundRun(label, folder, "signscope", method=method_label(manifest), config=dict(config)),
        manifest,
    )


@dataclass
class _Listing:
    """What a poll needs of one folder: its run files' stamps, or its subfolders."""

    mtime_ns: int
    trusted: bool  # listed well after its last change: an equal mtime means equal contents
    is_run: bool
    signscope: bool
    # run.json, metrics.jsonl and *.safetensors of a run folder; of a checkpoint-folder run
    # also "SUB/" (each subfolder) and "SUB/NAME" (the checkpoint files in it)
    stamps: dict[str, Stamp]
    subdirs: list[str]  # of a folder that is not a run, in natural order


def _relevant(name: str) -> bool:
    return name in (MANIFEST, METRICS) or _checkpoint_file(name)


def _checkpoint_file(name: str) -> bool:
    return name.endswith((".safetensors", ".safetensors.index.json")) and not name.startswith(".")


def _subfolder_stamps(path: str, subdirs: list[str]) -> dict[str, Stamp]:
    """Stamps of a checkpoint-folder run's subfolders and of the checkpoint files in them.
    A subfolder's own stamp changes when files are added to it, which the parent folder's
    mtime does not show: the watcher stats these every poll."""
    stamps = {}
    for sub in subdirs:
        folder = os.path.join(path, sub)
        try:
            stamps[sub + "/"] = stamp_of(os.stat(folder))
            with os.scandir(folder) as entries:
                for entry in entries:
                    if _checkpoint_file(entry.name) and entry.is_file():
                        stamps[f"{sub}/{entry.name}"] = stamp_of(entry.stat())
        except OSError:
            continue
    return stamps


def _list(path: str, st: os.stat_result) -> _Listing | None:
    names, stamps, subdirs = [], {}, []
    trusted = st.st_mtime_ns <= time.time_ns() - _RACY_NS
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir():
                        # Like os.walk: symlinked folders are listed but not searched.
                        if not (name.startswith(".") or name in _SKIP_DIRS or entry.is_symlink()):
                            subdirs.append(name)
                        continue
                    names.append(name)
                    if _relevant(name):
                        stamps[name] = stamp_of(entry.stat())
                except OSError:  # vanished or unreadable between listing and stat
                    continue
    except OSError:
        return None
    signscope = MANIFEST in names
    is_run = signscope or any(n.endswith(".safetensors") for n in names)
    if not signscope and subdirs and has_checkpoint_subfolders(Path(path), names, subdirs):
        is_run = True
        stamps.update(_subfolder_stamps(path, subdirs))
    return _Listing(
        st.st_mtime_ns,
        trusted,
        is_run,
        signscope,
        stamps if is_run else {},
        [] if is_run else sorted(subdirs, key=natural_key),
    )


@dataclass
class _Followed:
    """What the watcher remembers of one run folder between polls."""

    label: str
    key: Path  # resolved folder: a run reached through two given paths is listed once
    seen: dict[str, Stamp] = field(default_factory=dict)  # run files at the last poll
    described: dict[str, Stamp] | None = None  # the files ``base`` was described from
    base: FoundRun | None = None  # without ``training``
    manifest: dict | None = None
    headers: dict[str, tuple[Stamp, dict]] = field(default_factory=dict)
    log: EpochLog | None = None
    found: FoundRun | None = None  # what the last poll returned; None: not shown yet
    in_place: list[tuple[str, str]] = field(default_factory=list)  # files stat'ed every poll


class Watcher:
    """Discovery below ``paths``, repeated cheaply by :meth:`poll` (see the module docstring).

    Thread-safe: one poll runs at a time.
    """

    def __init__(self, paths: Sequence[str | os.PathLike] | None = None) -> None:
        self.roots = tuple(str(p) for p in (paths or ["."]))
        self._dirs: dict[str, _Listing] = {}
        self._runs: dict[str, _Followed] = {}
        self._lock = threading.Lock()
        self.polls = 0
        # In total, for tests and benchmarks: folders listed, checkpoint headers read.
        self.listings = 0
        self.headers_read = 0

    def poll(self) -> Discovery:
        """Every run below the paths now, in natural order, each reported once."""
        with self._lock:
            first = self.polls == 0
            self.polls += 1
            runs: list[FoundRun] = []
            problems: list[str] = []
            seen: set[Path] = set()
            visited: set[str] = set()
            for root in self.roots:
                if not os.path.exists(root):
                    problems.append(f"{root}: no such file or folder")
                    continue
                for label, folder, listing, fresh in self._walk(root, visited):
                    found = self._update(label, folder, listing, fresh, first)
                    if found is None:
                        continue
                    key = self._runs[folder].key
                    if key not in seen:
                        seen.add(key)
                        runs.append(found)
            # Forget folders that are gone (or no longer below the paths).
            for gone in self._dirs.keys() - visited:
                del self._dirs[gone]
                self._runs.pop(gone, None)
            return Discovery(roots=self.roots, runs=tuple(runs), problems=tuple(problems))

    # -- walking ----------------------------------------------------------------------------
    def _listing(self, path: str) -> tuple[_Listing | None, bool]:
        """The folder's listing and whether it was just made (False: reused, unchanged)."""
        try:
            st = os.stat(path)
        except OSError:
            return None, False
        cached = self._dirs.get(path)
        if cached is not None and cached.trusted and cached.mtime_ns == st.st_mtime_ns:
            return cached, False
        listing = _list(path, st)
        self.listings += 1
        if listing is None:
            self._dirs.pop(path, None)
        else:
            self._dirs[path] = listing
        return listing, True

    def _walk(self, root: str, visited: set[str]) -> Iterator[tuple[str, str, _Listing, bool]]:
        if os.path.isfile(root):
            # A checkpoint or manifest given directly stands for the folder it lives in.
            base = Path(root)
            if base.name == MANIFEST or base.suffix == ".safetensors":
                folder = str(base.parent)
                listing, fresh = self._listing(folder)
                visited.add(folder)
                if listing is not None and listing.is_run:
                    yield folder, folder, listing, fresh
            return
        stack = [(root, "")]
        while stack:
            path, rel = stack.pop()
            listing, fresh = self._listing(path)
            if listing is None:
                continue
            visited.add(path)
            if listing.is_run:
                # A run folder is a leaf: its subfolders are not other runs.
                label = root if rel == "" else os.path.normpath(os.path.join(root, rel))
                yield label, path, listing, fresh
                continue
            self._runs.pop(path, None)
            for name in reversed(listing.subdirs):
                stack.append((os.path.join(path, name), os.path.join(rel, name)))

    # -- one run ----------------------------------------------------------------------------
    def _update(
        self, label: str, folder: str, listing: _Listing, fresh: bool, first: bool
    ) -> FoundRun | None:
        state = self._runs.get(folder)
        if state is None or state.label != label:
            state = self._runs[folder] = _Followed(label, Path(folder).resolve())
        if fresh or not state.in_place:
            in_place = (MANIFEST, METRICS, *(n for n in listing.stamps if n.endswith("/")))
            state.in_place = [(n, os.path.join(folder, n)) for n in in_place]
        stamps = listing.stamps
        if not fresh:
            # The folder's entries are unchanged, but a file may be rewritten in place.
            changed = {}
            for name, path in state.in_place:
                if name in stamps:
                    current = _stat(path)
                    if current is not None and current != state.seen.get(name):
                        changed[name] = current
            if not changed and state.found is not None:
                return state.found  # the common case: a few stats, nothing else
            stamps = {**(state.seen or stamps), **changed}
        if not listing.signscope and not first and stamps != state.seen:
            # Plain runs are often copied in place (scp, cp): wait until a poll finds their
            # files unchanged, so that a half-copied checkpoint is never read; listing the
            # folder again next time re-stats them. Files of signscope runs are renamed into
            # place when complete and are read at once.
            state.seen = stamps
            self._dirs[folder] = dataclasses.replace(listing, trusted=False)
            return state.found
        state.seen = stamps
        inputs = {n: s for n, s in stamps.items() if n != METRICS}
        described = state.base is None or inputs != state.described
        if described:
            state.base, state.manifest = self._describe(state, Path(folder), stamps)
            state.described = inputs
        base, manifest = state.base, state.manifest
        training = None
        if base.kind == "signscope" and base.ok and manifest is not None:
            log = state.log
            if log is None and not training_of(manifest, len(base.levels)).complete:
                log = state.log = EpochLog(Path(folder) / METRICS)
            if log is not None:
                log.refresh(stamps.get(METRICS))
            modified = stamps.get(MANIFEST, (0, 0, 0))[2] / 1e9
            training = training_of(manifest, len(base.levels), log, modified)
        previous = state.found
        if (
            previous is not None
            and previous.training == training
            and (not described or dataclasses.replace(previous, training=None) == base)
        ):
            return previous  # unchanged: the same object, so callers can tell by identity
        state.found = dataclasses.replace(base, training=training)
        return state.found

    def _describe(
        self, state: _Followed, folder: Path, stamps: dict[str, Stamp]
    ) -> tuple[FoundRun, dict | None]:
        if MANIFEST in stamps:
            kind = "signscope"
        else:
            kind = "checkpoints" if any(n.endswith("/") for n in stamps) else "plain"

        def metadata(path: Path, stamp: Stamp) -> dict:
            cached = state.headers.get(path.name)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            # Reading headers checks that every tensor fits in its file and that a sharded
            # checkpoint matches its index: truncated copies show up here.
            meta = read_checkpoint(path).metadata
            self.headers_read += 1
            state.headers[path.name] = (stamp, meta)
            return meta

        try:
            if kind == "signscope":
                unstarted = _unstarted(state.label, folder, stamps)
                if unstarted is not None:
                    return unstarted
            return _describe(state.label, folder, stamps, metadata)
        except RunFormatError as exc:
            return FoundRun(label=state.label, path=folder, kind=kind, error=str(exc)), None
        except OSError as exc:
            error = f"{folder}: {exc.strerror or exc}"
            return FoundRun(label=state.label, path=folder, kind=kind, error=error), None


def discover(paths: Sequence[str | os.PathLike] | None = None) -> Discovery:
    """Every run below ``paths`` (default ``.``), in natural order, each run reported once."""
    return Watcher(paths).poll()
