"""``openlth``: a lottery experiment of facebookresearch/open_lth.

OpenLTH stores a lottery run as ``lottery_<hash>/replicate_R/level_L/main/`` (see its
``lottery/desc.py`` ``run_path`` and ``foundations/paths.py``):

- ``mask.pth``: ``{name: int tensor}``, the mask in force while level L trains (the lottery
  runner prunes, saves this mask, then trains);
- ``model_epE_itI.pth``: state dicts of the unwrapped model, one at the step training starts
  from and one at the end; the end (largest step) is the trained level;
- ``logger``: ``name,iteration,value`` lines, ``test_accuracy`` among them (a fraction);
- ``hparams.log`` (level 0 only): the hyperparameters, ``    * field => value`` per section.

With ``--rewinding_steps`` a ``level_pretrain/main/`` folder holds the initialisation
(its first model) and level 0 starts from the rewind point; without it level 0's
``model_ep0_it0.pth`` is the initialisation and also the point every level rewinds to.
OpenLTH's lottery runner always rewinds weights, so the method is IMP.

A branch (``lottery_branch_NAME_HASH``, e.g. ``randomly_prune``) lives beside ``main`` in
the level folders it was run for, usually only some of them: ``--experiment`` imports it,
its levels become signscope levels 0, 1, ... (run.json keeps each ``source_level``), and the
init and rewind point are the lottery's, from ``level_0/main``.
"""

from __future__ import annotations

import re
from pathlib import Path

from signscope.errors import RunFormatError
from trainers.importers.common import (
    ImportPlan,
    LevelData,
    LevelSource,
    RefSource,
    State,
    load_checkpoint,
    state_dict_of,
    strip_prefix,
)

_REPLICATE = re.compile(r"^replicate_(\d+)$")
_LEVEL = re.compile(r"^level_(\d+)$")
_MODEL = re.compile(r"^model_ep(\d+)_it(\d+)\.pth$")
_HPARAM = re.compile(r"^\s+\*\s+(\w+)\s+=>\s?(.*)$")
_BRANCH = re.compile(r"^lottery_branch_(\w+?)_[0-9a-f]{32}$")
MAIN = "main"
# OpenLTH's branches (lottery/branch/registry.py) in signscope's naming of variants.
_BRANCH_METHODS = {
    "randomly_prune": "imp-rand",
    "randomly_reinitialize": "imp-reinit",
    "retrain": "imp-retrain",
}


def _read_state(path: Path) -> State:
    return strip_prefix(state_dict_of(load_checkpoint(path), path))


def _models(folder: Path) -> list[tuple[tuple[int, int], Path]]:
    """``(epoch, iteration)`` and path of every model file, earliest step first."""
    found = []
    for p in folder.iterdir():
        m = _MODEL.match(p.name)
        if m and p.is_file():
            found.append(((int(m.group(1)), int(m.group(2))), p))
    return sorted(found)


def _numbered(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
    return {
        int(m.group(1)): p for p in folder.iterdir() if p.is_dir() and (m := pattern.match(p.name))
    }


def find_replicate(src: Path, replicate: int | None) -> Path:
    """``src`` may be the experiment folder (holding ``replicate_R``) or one replicate."""
    if _numbered(src, _LEVEL):
        m = _REPLICATE.match(src.name)
        if replicate is not None and (m is None or replicate != int(m.group(1))):
            raise RunFormatError(f"--replicate {replicate}: {src} is a single replicate already")
        return src
    reps = _numbered(src, _REPLICATE)
    if reps:
        listed = ", ".join(str(r) for r in sorted(reps))
        if replicate is not None:
            if replicate not in reps:
                raise RunFormatError(f"--replicate {replicate}: {src} has replicates {listed}")
            return reps[replicate]
        if len(reps) > 1:
            raise RunFormatError(f"{src}: holds replicates {listed}; choose one with --replicate R")
        return next(iter(reps.values()))
    experiments = sorted(p.name for p in src.iterdir() if p.is_dir() and _numbered(p, _REPLICATE))
    if experiments:
        raise RunFormatError(
            f"{src}: holds several OpenLTH experiments ({', '.join(experiments[:4])}); "
            "give one of them as SRC"
        )
    raise RunFormatError(f"{src}: not an OpenLTH lottery folder (no replicate_R/level_L/main/)")


def _coerce(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


def parse_hparams(text: str) -> dict[str, dict]:
    """``hparams.log`` as ``{"dataset": {...}, "model": {...}, "training": {...}, ...}``."""
    sections: dict[str, dict] = {}
    current: dict | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _HPARAM.match(line)
        if m and current is not None:
            current[m.group(1)] = _coerce(m.group(2).strip())
        elif not line[0].isspace():
            title = line.strip().removesuffix("Hyperparameters").strip()
            current = sections.setdefault(title.lower().replace(" ", "_") or "other", {})
    return sections


def final_test_accuracy(logger: Path) -> float | None:
    """The ``test_accuracy`` logged at the latest iteration, or None."""
    if not logger.is_file():
        return None
    latest: tuple[int, float] | None = None
    for line in logger.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.strip().split(",")
        if len(parts) != 3 or parts[0] != "test_accuracy":
            continue
        try:
            step, value = int(parts[1]), float(parts[2])
        except ValueError:
            continue
        if latest is None or step >= latest[0]:
            latest = (step, value)
    return None if latest is None else latest[1]


def _level_reader(model: Path, mask: Path, logger: Path):
    def read() -> LevelData:
        masks = state_dict_of(load_checkpoint(mask), mask)
        return LevelData(_read_state(model), masks, final_test_accuracy(logger), mask)

    return read


def branch_method(experiment: str) -> tuple[str, str | None]:
    """The method label of ``experiment`` and its branch name (None for ``main``).

    The lottery itself is IMP. A branch (``lottery_branch_NAME_HASH``, lottery/branch/ in
    OpenLTH) trains something else on IMP's masks or weights, so it gets a label of its own
    and ``signscope acc`` keeps it apart from IMP."""
    if experiment == MAIN:
        return "imp", None
    m = _BRANCH.match(experiment)
    name = m.group(1) if m else experiment
    return _BRANCH_METHODS.get(name, f"imp+{name}"), name


def _mask_file(rep: Path, level: int, folder: Path) -> Path:
    """A level's mask: the experiment's own, else the lottery's (the ``retrain`` branch trains
    with ``Mask.load(level_root)`` and saves none)."""
    for mask in (folder / "mask.pth", rep / f"level_{level}" / MAIN / "mask.pth"):
        if mask.is_file():
            return mask
    raise RunFormatError(f"{folder / 'mask.pth'}: file not found")


def _references(rep: Path, notes: list[str]) -> tuple[RefSource | None, RefSource | None]:
    """The lottery's initialisation and rewind point, whichever experiment is imported: a
    branch's first model is already masked (and a branch has no level 0 of its own)."""
    level0 = rep / "level_0" / MAIN
    models = _models(level0) if level0.is_dir() else []
    if not models:
        notes.append(f"no models in {level0}: the run has no init or rewind point")
        return None, None
    start_step, start = models[0]
    rewind = RefSource(start, lambda: _read_state(start))
    pretrain = rep / "level_pretrain" / MAIN
    first = _models(pretrain)[0][1] if pretrain.is_dir() and _models(pretrain) else None
    if first is not None:
        return RefSource(first, lambda: _read_state(first)), rewind
    if start_step == (0, 0):
        return rewind, rewind
    notes.append(
        f"level 0 starts at epoch {start_step[0]} iteration {start_step[1]} and "
        "there is no level_pretrain folder"
    )
    return None, rewind


def plan(src: Path, replicate: int | None = None, experiment: str = MAIN) -> ImportPlan:
    rep = find_replicate(src, replicate)
    level_dirs = {
        lvl: p / experiment
        for lvl, p in _numbered(rep, _LEVEL).items()
        if (p / experiment).is_dir()
    }
    if not level_dirs:
        raise RunFormatError(f"{rep}: no level_L/{experiment}/ folders")
    levels: list[LevelSource] = []
    incomplete: list[int] = []
    for lvl in sorted(level_dirs):
        folder = level_dirs[lvl]
        models = _models(folder)
        # A level that has not finished training has at most its starting model.
        if len(models) < 2:
            incomplete.append(lvl)
            continue
        if incomplete:
            raise RunFormatError(
                f"{level_dirs[incomplete[0]]}: no trained model, but later levels have one"
            )
        mask = _mask_file(rep, lvl, folder)
        levels.append(
            LevelSource(lvl, models[-1][1], _level_reader(models[-1][1], mask, folder / "logger"))
        )
    if not levels:
        raise RunFormatError(
            f"{rep}: no level has finished training (no model_ep*_it*.pth after the first)"
        )

    notes = []
    if incomplete:
        notes.append(
            f"levels {', '.join(map(str, incomplete))} of the source had not finished "
            "training and were left out"
        )
    init, rewind = _references(rep, notes)

    # The lottery's hyperparameters (desc.save writes them at level 0 of main only).
    hparams_file = rep / "level_0" / MAIN / "hparams.log"
    source_config = None
    config: dict = {}
    if hparams_file.is_file():
        source_config = parse_hparams(hparams_file.read_text(encoding="utf-8", errors="replace"))
        model = source_config.get("model", {}).get("model_name")
        dataset = source_config.get("dataset", {}).get("dataset_name")
        config = {k: v for k, v in (("model", model), ("dataset", dataset)) if v is not None}
    m = _REPLICATE.match(rep.name)
    rep_number = int(m.group(1)) if m else None
    method, branch = branch_method(experiment)
    details: dict = {"replicate": rep_number, "experiment": experiment}
    if branch is not None:
        details["branch"] = branch
    return ImportPlan(
        kind="openlth",
        src=src,
        levels=levels,
        init=init,
        rewind=rewind,
        method=method,
        # OpenLTH tells replicates apart by number; it plays the role of the seed.
        seed=rep_number,
        config=config,
        details=details,
        source_config=source_config,
        complete=not incomplete,
        notes=notes,
        read_reference=_read_state,
    )
