"""``paper-code``: checkpoints written by the paper's own code.

The authors' code (github.com/AdvaitGadhikar/imp-lrr-lts ``main.py``, built on RAIVNLab/STR)
writes into ``runs/``, for an experiment ``--name NAME``:

- ``model_NAME_init.pt``: the state dict after the warm-up epochs (``--warmup``, on by
  default, ``--warmup-epochs`` 10). IMP's ``--reset-weights`` rewinds to it, so it is the
  rewind point (paper A.3); it is the initialisation only when no warm-up epoch ran.
- per level L (one per density of ``--threshold-list``): train, prune, then save
  ``mask_NAME_L.pt``, a list with the mask of every ``ConvMask`` module in module order,
  *after* pruning, so the mask level L+1 trains with; and ``model_NAME_L.pt``, the state
  dict at the end of level L's training. The model runs under ``DataParallel`` (names start
  with ``module.``), ``ConvMask`` keeps its mask as a buffer ``NAME.mask`` and applies it in
  the forward pass, so pruned weights are not zero in the file.
- after the last level: ``mask_NAME.pt`` and ``model_NAME_trained.pt``, the final training.
- ``val_acc_NAME.pt``: top-1 test accuracy in percent after every epoch (warm-up, levels,
  final training), and ``runs/<config>/NAME/prune_rate=<p>/settings.txt``: ``str(args)``,
  beside ``checkpoints/initial.state`` (``{"state_dict": ...}`` before the warm-up: the true
  initialisation). A re-run under the same name gets the folder ``.../prune_rate=<p>/0`` (then
  ``/1``, ...) and overwrites the ``.pt`` files in ``runs/``.

signscope level 0 is therefore ``model_NAME_0.pt`` with the mask it trained with (the mask
buffers of ``model_NAME_init.pt``, or dense), level L >= 1 is ``model_NAME_L.pt`` with
``mask_NAME_{L-1}.pt``, and the final training, when present, is one more level.
"""

from __future__ import annotations

import ast
import glob
import re
from pathlib import Path
from typing import Any

import torch

from signscope.errors import RunFormatError
from trainers.importers.common import (
    ImportPlan,
    LevelData,
    LevelSource,
    Masks,
    RefSource,
    State,
    UnsafeCheckpointError,
    load_checkpoint,
    state_dict_of,
    strip_prefix,
)

_LEVEL_FILE = re.compile(r"^model_(.+)_(\d+)\.pt$")
_MASK_BUFFER = ".mask"


def split_mask_buffers(raw: State) -> tuple[State, Masks]:
    """Take the ``ConvMask`` buffers ``X.mask`` out of the state dict as masks of ``X.weight``.

    The masks come back in state-dict order, which is the module order the mask lists use.
    """
    state = strip_prefix(raw)
    masks: Masks = {}
    for key, value in list(state.items()):
        if key.endswith(_MASK_BUFFER):
            weight = key[: -len(_MASK_BUFFER)] + ".weight"
            if weight in state and state[weight].shape == value.shape:
                masks[weight] = value
                del state[key]
    return state, masks


def _read_reference(path: Path) -> State:
    return split_mask_buffers(state_dict_of(load_checkpoint(path), path))[0]


def masked_layers(state: State, buffers: Masks) -> list[str]:
    """Names of the masked weights in module order: the ``ConvMask`` layers when the file
    has their buffers, else every floating weight of 2+ dims (SPEC section 2's rule)."""
    if buffers:
        return list(buffers)
    return [
        k
        for k, v in state.items()
        if k.endswith("weight") and v.ndim >= 2 and v.is_floating_point()
    ]


def _mask_list(path: Path, names: list[str], model: Path) -> Masks:
    obj = load_checkpoint(path)
    if not isinstance(obj, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in obj):
        raise RunFormatError(f"{path}: expected a list of mask tensors, found {type(obj).__name__}")
    if len(obj) != len(names):
        raise RunFormatError(
            f"{path}: holds {len(obj)} masks, but {model} has {len(names)} masked layers"
        )
    return dict(zip(names, obj, strict=True))


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def parse_settings(text: str) -> dict | None:
    """``settings.txt`` (``Namespace(a=1, ...)``) as a dict, read with ``ast``, never ``eval``."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return None
    if not isinstance(tree.body, ast.Call):
        return None
    settings = {}
    for kw in tree.body.keywords:
        if kw.arg is None:
            continue
        try:
            settings[kw.arg] = _jsonable(ast.literal_eval(kw.value))
        except (ValueError, TypeError, SyntaxError, RecursionError):
            settings[kw.arg] = ast.unparse(kw.value)
    return settings


def run_folder(src: Path, name: str, settings: Path | None, notes: list[str]) -> Path | None:
    """The folder ``get_directories`` of main.py made for the run: its ``settings.txt`` and
    ``checkpoints/initial.state``. ``settings`` (``--settings FILE``) names it; otherwise the
    one ``runs/<config>/NAME/...`` holds, or the last re-run's when NAME ran again."""
    if settings is not None:
        if not settings.is_file():
            raise RunFormatError(f"--settings {settings}: file not found")
        return settings.parent
    found = sorted(src.glob(f"*/{glob.escape(name)}/**/settings.txt"))
    if len(found) < 2:
        return found[0].parent if found else None
    listed = ", ".join(str(p.relative_to(src)) for p in found)
    latest = latest_rerun([p.parent for p in found])
    if latest is None:
        notes.append(
            f"several settings.txt for {name} ({listed}); none was read: choose one with "
            "--settings FILE"
        )
        return None
    notes.append(
        f"several settings.txt for {name} ({listed}); read the last re-run's, "
        f"{(latest / 'settings.txt').relative_to(src)} (a re-run overwrites "
        "model_NAME_*.pt); --settings FILE chooses another"
    )
    return latest


def latest_rerun(folders: list[Path]) -> Path | None:
    """The last of one run's re-runs: main.py puts a re-run under the same name into
    ``<first run's folder>/0``, then ``/1``, ...; None when the folders are not such a chain."""
    keyed = [(f.parent, int(f.name)) if f.name.isdigit() else (f, -1) for f in folders]
    if len({base for base, _ in keyed}) != 1:
        return None
    return max(zip(keyed, folders, strict=True), key=lambda pair: pair[0][1])[1]


def _read_settings(folder: Path | None, notes: list[str]) -> dict | None:
    if folder is None:
        return None
    path = folder / "settings.txt"
    settings = parse_settings(path.read_text(encoding="utf-8", errors="replace"))
    if settings is None:
        notes.append(f"{path}: not a Namespace(...) line; not read")
    return settings


def method_from_settings(settings: dict | None) -> tuple[str | None, dict]:
    """IMP resets weights (``--reset-weights``), LRR resets nothing, LRR with BN rewinding
    resets BatchNorm only (``--reset-only-bn``); any other reset or load flag is a variant
    signscope does not name, so the method stays unknown."""
    if settings is None:
        return None, {}
    flags = sorted(
        k for k, v in settings.items() if v is True and k.startswith(("reset_", "load_"))
    )
    extra = {"pruner": settings["pruner"]} if settings.get("pruner") else {}
    if flags == []:
        return "lrr", extra
    if flags == ["reset_weights"]:
        return "imp", extra
    if flags == ["reset_only_bn"]:
        return "lrr", {**extra, "bn_rewind": True}
    return None, extra


def _warmup_epochs(settings: dict) -> int | None:
    if settings.get("warmup") is False:
        return 0
    w = settings.get("warmup_epochs")
    return w if isinstance(w, int) else None


def level_accuracies(
    path: Path, settings: dict | None, n_trained: int, final: bool, notes: list[str]
) -> list[float | None]:
    """Test accuracy at the end of each level, cut out of the per-epoch list.

    The list has ``warmup_epochs`` entries, then ``final_prune_epoch`` per level, then the
    final training's epochs; without settings.txt the level boundaries are unknown.
    """
    n = n_trained + int(final)
    if not path.is_file() or settings is None:
        return [None] * n
    warmup, per_level = _warmup_epochs(settings), settings.get("final_prune_epoch")
    epochs, start = settings.get("epochs"), settings.get("start_epoch") or 0
    if not all(isinstance(v, int) for v in (warmup, per_level, epochs, start)):
        notes.append(f"{path.name}: settings.txt lacks the epoch counts; accuracies not imported")
        return [None] * n
    try:
        raw = load_checkpoint(path)
        accs = [float(a) for a in raw]
    except UnsafeCheckpointError as exc:
        notes.append(f"{path.name}: refused as unsafe ({exc.refusal}); accuracies not imported")
        return [None] * n
    except RunFormatError as exc:
        notes.append(f"{path.name}: unreadable ({exc}); accuracies not imported")
        return [None] * n
    except (TypeError, ValueError, RuntimeError):
        notes.append(f"{path.name}: not a list of numbers; accuracies not imported")
        return [None] * n
    out: list[float | None] = []
    for level in range(n_trained):
        idx = warmup + (level + 1) * per_level - 1
        out.append(accs[idx] / 100 if idx < len(accs) else None)
    if final:
        complete = len(accs) == warmup + n_trained * per_level + (epochs - start)
        out.append(accs[-1] / 100 if complete else None)
    if any(a is not None and not 0 <= a <= 1 for a in out):
        notes.append(f"{path.name}: values outside 0..100 percent; accuracies not imported")
        return [None] * n
    return out


def _names(src: Path) -> dict[str, dict[int, Path]]:
    found: dict[str, dict[int, Path]] = {}
    for p in src.iterdir():
        m = _LEVEL_FILE.match(p.name)
        if m and p.is_file():
            found.setdefault(m.group(1), {})[int(m.group(2))] = p
    return found


def _level_reader(model: Path, mask: Path | None, init: Path | None, acc: float | None):
    def read() -> LevelData:
        state, buffers = split_mask_buffers(state_dict_of(load_checkpoint(model), model))
        names = masked_layers(state, buffers)
        if mask is not None:
            masks = _mask_list(mask, names, model)
        else:
            # Level 0 trains with the mask the model was built with: the init file's buffers.
            start = (
                split_mask_buffers(state_dict_of(load_checkpoint(init), init))[1] if init else {}
            )
            masks = {n: start.get(n, torch.ones(state[n].shape, dtype=torch.bool)) for n in names}
        return LevelData(state, masks, acc, mask)

    return read


def plan(src: Path, name: str | None = None, settings: Path | None = None) -> ImportPlan:
    experiments = _names(src)
    if not experiments:
        raise RunFormatError(f"{src}: no model_NAME_LEVEL.pt files (the paper code's runs/ folder)")
    if name is None:
        if len(experiments) > 1:
            listed = ", ".join(sorted(experiments)[:6])
            raise RunFormatError(
                f"{src}: holds several experiments ({listed}); choose one with --name"
            )
        name = next(iter(experiments))
    if name not in experiments:
        raise RunFormatError(
            f"{src}: no model_{name}_0.pt (experiments here: {', '.join(sorted(experiments)[:6])})"
        )
    files = experiments[name]
    n_trained = max(files) + 1
    warmed = src / f"model_{name}_init.pt"
    warmed = warmed if warmed.is_file() else None
    trained = src / f"model_{name}_trained.pt"
    final_mask = src / f"mask_{name}.pt"
    if not final_mask.is_file():
        final_mask = src / f"mask_{name}_{n_trained - 1}.pt"
    final = trained.is_file()

    notes: list[str] = []
    folder = run_folder(src, name, settings, notes)
    config = _read_settings(folder, notes)
    accs = level_accuracies(src / f"val_acc_{name}.pt", config, n_trained, final, notes)
    levels = []
    for level in range(n_trained):
        if level not in files:
            raise RunFormatError(f"{src}: model_{name}_{level}.pt is missing")
        mask = src / f"mask_{name}_{level - 1}.pt" if level else None
        if mask is not None and not mask.is_file():
            raise RunFormatError(f"{mask}: file not found (the mask level {level} trains with)")
        levels.append(
            LevelSource(level, files[level], _level_reader(files[level], mask, warmed, accs[level]))
        )
    if final:
        if not final_mask.is_file():
            raise RunFormatError(f"{final_mask}: file not found (the mask of {trained.name})")
        levels.append(
            LevelSource(n_trained, trained, _level_reader(trained, final_mask, warmed, accs[-1]))
        )
    complete = _complete(config, n_trained, final, trained.name, notes)

    method, extra = method_from_settings(config)
    rewind = RefSource(warmed, lambda: _read_reference(warmed)) if warmed else None
    warmup = _warmup_epochs(config) if config else None
    if warmed and warmup != 0:
        notes.append(
            f"{warmed.name} holds the weights after the warm-up epochs (the rewind "
            "point), not the initialisation"
        )
    # main.py saves the model before the warm-up as checkpoints/initial.state.
    initial = folder / "checkpoints" / "initial.state" if folder is not None else None
    if initial is not None and initial.is_file():
        init = RefSource(initial, lambda: _read_reference(initial))
    else:
        init = rewind if warmup == 0 else None
    return ImportPlan(
        kind="paper-code",
        src=src,
        levels=levels,
        init=init,
        rewind=rewind,
        method=method,
        seed=config.get("seed") if config and isinstance(config.get("seed"), int) else None,
        config={
            **({"dataset": config["set"]} if config and config.get("set") else {}),
            **extra,
        },
        details={"name": name},
        # seed and name tell replicates apart; they are config.seed and imported_from.name,
        # so that runs differing only in them compare as replicates of one experiment.
        source_config={k: v for k, v in config.items() if k not in ("seed", "name")}
        if config
        else None,
        complete=complete,
        notes=notes,
        read_reference=_read_reference,
    )


def _complete(
    settings: dict | None, n_trained: int, final: bool, trained: str, notes: list[str]
) -> bool:
    """main.py trains one level per entry of ``--threshold-list``, then the final training
    (``model_NAME_trained.pt``); a run that stopped earlier is incomplete."""
    thresholds = settings.get("threshold_list") if settings else None
    missing = []
    if isinstance(thresholds, list) and n_trained < len(thresholds):
        missing.append(
            f"it trained {n_trained} of the {len(thresholds)} levels in its threshold_list"
        )
    if not final:
        missing.append(f"there is no {trained} (its final training)")
    if missing:
        notes.append("the source run did not finish: " + "; ".join(missing))
    return not missing
