"""``signscope train``: run IMP or LRR and write a run folder (SPEC sections 1 and 2).

Thin on purpose: it collects the options the user gave explicitly, lets trainers.config merge
them over the preset, and hands over to trainers.train. PyTorch is imported only when the
command runs, so the inspection commands work without the ``train`` extra.
"""

from pathlib import Path
from typing import Annotated

import typer

from signscope.cli.app import app
from signscope.errors import SignscopeError

# Settings are described once, in trainers/config.py (TrainConfig's field help). Importing that
# module is cheap: it does not import torch.
from trainers.config import DEFAULTS, PRESETS, help_text


def _opt(name: str, *flags: str, **kw):
    flag = "--" + name.replace("_", "-")
    return typer.Option(flag, *flags, help=help_text(name), show_default=True, **kw)


def _ints(text: str, n: int, what: str) -> tuple[int, ...]:
    parts = text.replace("x", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != n:
        raise typer.BadParameter(f"{what}: expected {n} integers like {'x'.join(['32'] * n)}, got {text!r}")
    return values


def _default_out(method: str, bn_rewind: bool, seed: int, preset: str | None, dataset: str, model: str) -> Path:
    label = f"{method}+bn-rewind" if bn_rewind else method
    return Path("runs") / (preset or f"{dataset}-{model}") / f"{label}-seed{seed}"


# The option names below are TrainConfig's field names; only those the user typed override the preset.
_CONFIG_OPTIONS = ("method", "bn_rewind", "model", "dataset", "data_root", "download", "levels",
                   "prune_fraction", "criterion", "epochs", "lr", "lr_warmup_epochs", "rewind_epoch",
                   "schedule", "batch_size", "weight_decay", "momentum", "seed", "device", "threads", "eval_every",
                   "synthetic_shape", "synthetic_classes", "synthetic_size", "init_from")


@app.command()
def train(
    ctx: typer.Context,
    preset: Annotated[str | None, typer.Option(
        "--preset", help=f"Start from a preset: {', '.join(PRESETS)}. Options given explicitly override it.")] = None,
    method: Annotated[str, _opt("method")] = DEFAULTS.method,
    bn_rewind: Annotated[bool, _opt("bn_rewind")] = DEFAULTS.bn_rewind,
    model: Annotated[str, _opt("model")] = DEFAULTS.model,
    dataset: Annotated[str, _opt("dataset")] = DEFAULTS.dataset,
    data_root: Annotated[Path | None, _opt("data_root")] = None,
    download: Annotated[bool, _opt("download")] = DEFAULTS.download,
    levels: Annotated[int, _opt("levels")] = DEFAULTS.levels,
    prune_fraction: Annotated[float, _opt("prune_fraction")] = DEFAULTS.prune_fraction,
    criterion: Annotated[str, _opt("criterion")] = DEFAULTS.criterion,
    epochs: Annotated[int, _opt("epochs")] = DEFAULTS.epochs,
    lr: Annotated[float, _opt("lr")] = DEFAULTS.lr,
    lr_warmup_epochs: Annotated[int, _opt("lr_warmup_epochs")] = DEFAULTS.lr_warmup_epochs,
    rewind_epoch: Annotated[int, _opt("rewind_epoch")] = DEFAULTS.rewind_epoch,
    schedule: Annotated[str, _opt("schedule")] = DEFAULTS.schedule,
    batch_size: Annotated[int, _opt("batch_size")] = DEFAULTS.batch_size,
    weight_decay: Annotated[float, _opt("weight_decay")] = DEFAULTS.weight_decay,
    momentum: Annotated[float, _opt("momentum")] = DEFAULTS.momentum,
    seed: Annotated[int, _opt("seed")] = DEFAULTS.seed,
    device: Annotated[str, _opt("device")] = DEFAULTS.device,
    threads: Annotated[int, _opt("threads")] = DEFAULTS.threads,
    eval_every: Annotated[int, _opt("eval_every")] = DEFAULTS.eval_every,
    synthetic_shape: Annotated[str, _opt("synthetic_shape")] = "x".join(map(str, DEFAULTS.synthetic_shape)),
    synthetic_classes: Annotated[int, _opt("synthetic_classes")] = DEFAULTS.synthetic_classes,
    synthetic_size: Annotated[str, _opt("synthetic_size")] = ",".join(map(str, DEFAULTS.synthetic_size)),
    init_from: Annotated[Path | None, _opt("init_from")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Run folder to write. Default: runs/<preset or dataset-model>/<method>-seed<seed>.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --out after its last complete level.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the run in --out (its checkpoints, run.json and metrics.jsonl).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only one summary line per level.")] = False,
) -> None:
    """Train a network with iterative pruning (IMP or LRR) and write one checkpoint per level.

    Level 0 trains the dense network; every later level removes --prune-fraction of the
    remaining conv/linear weights by global magnitude and retrains, restarting the LR schedule.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SignscopeError("signscope train needs PyTorch: pip install 'signscope[train]'") from None
    from signscope.runformat import read_manifest
    from trainers.config import config_for_resume, resolve_config
    from trainers.progress import make_reporter
    from trainers.train import train as run_training

    values = dict(locals())
    explicit = {name: values[name] for name in _CONFIG_OPTIONS
                if ctx.get_parameter_source(name).name == "COMMANDLINE"}
    for name in ("data_root", "init_from"):
        if explicit.get(name) is not None:
            explicit[name] = str(explicit[name])
    if "synthetic_shape" in explicit:
        explicit["synthetic_shape"] = _ints(synthetic_shape, 3, "--synthetic-shape")
    if "synthetic_size" in explicit:
        explicit["synthetic_size"] = _ints(synthetic_size, 2, "--synthetic-size")

    manifest = read_manifest(out) if resume and out is not None and out.is_dir() else None
    if manifest is not None:
        if preset is not None:
            explicit["preset"] = preset
        cfg = config_for_resume(manifest.get("config", {}), explicit, str(out))
    else:
        cfg = resolve_config(preset, explicit)
    if out is None:
        out = _default_out(cfg.method, cfg.bn_rewind, cfg.seed, cfg.preset, cfg.dataset, cfg.model)
    reporter = make_reporter(quiet)
    run_training(cfg, out, resume=resume, force=force, reporter=reporter)
    reporter.note(f"run written to {out}")
