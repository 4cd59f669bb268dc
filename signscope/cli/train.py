"""``signscope train``: run IMP or LRR and write a run folder (SPEC sections 1 and 2).

Thin on purpose: it collects the options the user gave explicitly, lets trainers.config merge
them over the preset, and hands over to trainers.train. PyTorch is imported only when the
command runs, so the inspection commands work without the ``train`` extra.
"""

import io
from pathlib import Path
from typing import Annotated

import typer

from signscope.cli.app import app
from signscope.errors import SignscopeError

# Settings are described once, in trainers/config.py (TrainConfig's field help). Importing that
# module is cheap: it does not import torch.
from trainers.config import DEFAULTS, OPTIONS, PRESETS, help_text


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
        raise typer.BadParameter(
            f"{what}: expected {n} integers like {'x'.join(['32'] * n)}, got {text!r}"
        )
    return values


# How the steps run, not what they compute: shared with `signscope bench`, and recorded in
# run.json beside (not in) the config, so they may change on --resume.
AmpOption = Annotated[
    str,
    typer.Option(
        "--amp",
        help="Autocast precision: auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 (with loss "
        "scaling) or off (fp32).",
        show_default=True,
    ),
]
CompileOption = Annotated[
    bool,
    typer.Option(
        "--compile", help="torch.compile the model (first steps slower while it compiles)."
    ),
]


def _default_out(label: str, seed: int, preset: str | None, dataset: str, model: str) -> Path:
    # The label names the variant too (imp-rand, lrr+mask-from, ...): a variant never lands
    # in the folder of its baseline run.
    return Path("runs") / (preset or f"{dataset}-{model}") / f"{label}-seed{seed}"


@app.command()
def train(
    ctx: typer.Context,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help=f"Start from a preset: {', '.join(PRESETS)}. "
            "Options given explicitly override it.",
        ),
    ] = None,
    method: Annotated[str, _opt("method")] = DEFAULTS.method,
    bn_rewind: Annotated[bool, _opt("bn_rewind")] = DEFAULTS.bn_rewind,
    model: Annotated[str, _opt("model")] = DEFAULTS.model,
    dataset: Annotated[str, _opt("dataset")] = DEFAULTS.dataset,
    data_root: Annotated[Path | None, _opt("data_root")] = None,
    download: Annotated[bool, _opt("download")] = DEFAULTS.download,
    levels: Annotated[int, _opt("levels")] = DEFAULTS.levels,
    prune_fraction: Annotated[float, _opt("prune_fraction")] = DEFAULTS.prune_fraction,
    prune: Annotated[str, _opt("prune")] = DEFAULTS.prune,
    criterion: Annotated[str, _opt("criterion")] = DEFAULTS.criterion,
    mask_from: Annotated[Path | None, _opt("mask_from", metavar="RUN")] = None,
    signs_from: Annotated[Path | None, _opt("signs_from", metavar="RUN")] = None,
    perturb_signs: Annotated[
        float, _opt("perturb_signs", metavar="FRACTION")
    ] = DEFAULTS.perturb_signs,
    perturb_at_level: Annotated[int | None, _opt("perturb_at_level", metavar="L")] = None,
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
    data_workers: Annotated[int, _opt("data_workers")] = DEFAULTS.data_workers,
    synthetic_shape: Annotated[str, _opt("synthetic_shape")] = "x".join(
        map(str, DEFAULTS.synthetic_shape)
    ),
    synthetic_classes: Annotated[int, _opt("synthetic_classes")] = DEFAULTS.synthetic_classes,
    synthetic_size: Annotated[str, _opt("synthetic_size")] = ",".join(
        map(str, DEFAULTS.synthetic_size)
    ),
    init_from: Annotated[Path | None, _opt("init_from")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Run folder to write. "
            "Default: runs/<preset or dataset-model>/<method>-seed<seed>.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the run in --out after its last complete level."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace the run in --out (its checkpoints, run.json and metrics.jsonl).",
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print only the command that watches the run, then one summary line per level.",
        ),
    ] = False,
    amp: AmpOption = "auto",
    compile: CompileOption = False,
) -> None:
    """Train a network with iterative pruning (IMP or LRR) and write one checkpoint per level.

    Level 0 trains the dense network; every later level removes --prune-fraction of the
    remaining conv/linear weights by global magnitude and retrains, restarting the LR schedule.
    --prune, --criterion, --mask-from, --signs-from and --perturb-signs run the paper's
    variants (docs/training.md, "The paper's experiments").
    Under [bold]torchrun --nproc_per_node N -m signscope train ...[/bold] it trains with
    DistributedDataParallel (--batch-size stays the global batch); rank 0 writes the run.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SignscopeError(
            "signscope train needs PyTorch: pip install 'signscope[train]'"
        ) from None
    from rich.console import Console

    from signscope.display import printable
    from signscope.runformat import read_manifest
    from trainers.config import RESUMABLE_CHANGES, config_for_resume, resolve_config
    from trainers.distributed import launch_env, process_group
    from trainers.progress import Reporter, make_reporter
    from trainers.rundir import check_modes
    from trainers.train import resolve_device
    from trainers.train import train as run_training

    check_modes(resume, force)
    values = dict(locals())
    # The settings marked as options are parameters of this function with the same names; only
    # those the user typed override the preset.
    explicit = {
        name: values[name]
        for name in OPTIONS
        if ctx.get_parameter_source(name).name == "COMMANDLINE"
    }
    for name in ("data_root", "init_from", "mask_from", "signs_from"):
        if explicit.get(name) is not None:
            explicit[name] = str(explicit[name])
    if "synthetic_shape" in explicit:
        explicit["synthetic_shape"] = _ints(synthetic_shape, 3, "--synthetic-shape")
    if "synthetic_size" in explicit:
        explicit["synthetic_size"] = _ints(synthetic_size, 2, "--synthetic-size")

    manifest = read_manifest(out) if resume and out is not None and out.is_dir() else None
    if resume and manifest is None and preset is None and explicit.keys() <= RESUMABLE_CHANGES:
        # Defaults would start some other run (the demo) under the name of the one meant.
        where = f"--resume {out}" if out is not None else "--resume without --out"
        raise SignscopeError(
            f"{where}: there is no run to continue (no run.json), and no settings were "
            "given to start one"
        )
    if manifest is not None:
        if preset is not None:
            explicit["preset"] = preset
        cfg = config_for_resume(manifest.get("config", {}), explicit, str(out))
    else:
        cfg = resolve_config(preset, explicit)
    if out is None:
        out = _default_out(cfg.label, cfg.seed, cfg.preset, cfg.dataset, cfg.model)
    env = launch_env()  # torchrun's RANK/WORLD_SIZE/LOCAL_RANK, or rank 0 of 1
    # Ranks other than 0 train in silence: one set of progress lines, from the rank that writes.
    reporter = make_reporter(quiet) if env.is_main else Reporter(Console(file=io.StringIO()))
    with process_group(env, resolve_device(cfg.device).type):
        run_training(
            cfg,
            out,
            resume=resume,
            force=force,
            reporter=reporter,
            rank=env.rank,
            world_size=env.world_size,
            amp=amp,
            compile=compile,
        )
    reporter.note(f"run written to {printable(str(out))}")
