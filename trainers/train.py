"""The level loop of iterative pruning (SPEC section 1) and the run directory it writes
(SPEC section 2): the Python entry point behind ``signscope train``.

Level 0 trains the dense network from the initial weights and records the rewind point at the
end of epoch ``rewind_epoch`` (0 = the initial weights), whatever the method, so IMP and LRR from
one seed share ``init.safetensors`` and ``rewind.safetensors`` byte for byte (paper A.3: "We
ensure that each run of IMP and LRR has an identical rewind point"). Every level L >= 1 prunes
the end of level L-1 (trainers.pruning), starts from :func:`trainers.pruning.level_start_state`
and retrains with a fresh optimizer and a restarted LR schedule, warmup included.

Resuming relies on two facts: a level file is renamed into place only when complete, and
everything random in a level is drawn from generators seeded by (seed, level). A resumed run
therefore recomputes exactly what the uninterrupted run computed. Momentum buffers start empty
at every level, so the level files hold all state that crosses a level boundary.

``rank``/``world_size`` are threaded through for data-parallel training (``torchrun``; the
caller joins the process group, see trainers.distributed): each rank trains on its shard with
``batch_size / world_size`` examples per step inside DistributedDataParallel, the epoch's
loss and accuracy are summed over the ranks, every level starts from rank 0's masks and
weights, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from signscope.errors import SignscopeError, UsageError
from signscope.runformat import (
    INIT_FILE,
    LEVEL_RE,
    METRICS,
    REWIND_FILE,
    atomic_append_line,
    level_filename,
    read_manifest,
    write_manifest,
)
from trainers import distributed
from trainers.checkpoint import (
    alive_and_density,
    completed_levels,
    read_level,
    read_reference,
    write_level,
    write_reference,
)
from trainers.config import TrainConfig, check_levels, config_for_resume
from trainers.datasets import TrainingData, load_dataset
from trainers.loop import (
    AMP_MODES,
    EVAL_BATCH,
    amp_label,
    compile_model,
    evaluate,
    make_optimizer,
    make_scaler,
    steps_per_epoch,
    train_one_epoch,
)
from trainers.models import build_model, prunable_parameters
from trainers.progress import Reporter
from trainers.pruning import (
    MaskEnforcer,
    PruneContext,
    dense_masks,
    level_start_state,
    masked,
    target_alive,
)
from trainers.pruning_criteria import criterion_name, prune
from trainers.rundir import RunFolder, check_modes
from trainers.schedule import level_lrs
from trainers.variants import LevelVariants

State = dict[str, torch.Tensor]
LevelCallback = Callable[[int, nn.Module], None]


class Stream(enum.IntEnum):
    """Independent random streams of a level, each seeded from (seed, level, stream). The
    numbers are part of every run's results: never renumber them."""

    DATA = 0  # the epoch's order and augmentation
    GLOBAL = 1  # torch's global RNG, for anything that draws from it
    PRUNE = 2  # the pruning criterion (random masks, SNIP's batch)
    PERTURB = 3  # --perturb-signs


def level_seed(seed: int, level: int, stream: int) -> int:
    return int(
        np.random.SeedSequence([seed, level, stream]).generate_state(1, dtype=np.uint64)[0] >> 1
    )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        build = (
            "built without CUDA"
            if torch.version.cuda is None
            else f"CUDA {torch.version.cuda} build"
        )
        raise SignscopeError(
            f"--device cuda: no CUDA device is available (torch {torch.__version__}, "
            f"{build}); use --device cpu or --device auto"
        )
    return torch.device(name)


def snapshot(model: nn.Module) -> State:
    """A copy of the state dict: ``state_dict()`` aliases the live parameters."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def batchnorm_state_names(model: nn.Module) -> list[str]:
    """State-dict names of every BatchNorm parameter and buffer (gamma, beta, running stats)."""
    return [
        f"{prefix}.{k}" if prefix else k
        for prefix, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for k in m.state_dict()
    ]


def _check_fits(
    state: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor], what: str
) -> None:
    if set(state) != set(model_state):
        extra, missing = (
            sorted(set(state) - set(model_state)),
            sorted(set(model_state) - set(state)),
        )
        raise SignscopeError(
            f"{what}: different architecture (tensors missing: {missing[:3]}, "
            f"unexpected: {extra[:3]})"
        )
    for k, v in model_state.items():
        if tuple(state[k].shape) != tuple(v.shape) or state[k].dtype != v.dtype:
            raise SignscopeError(
                f"{what}: different architecture ({k} is {tuple(state[k].shape)} "
                f"{state[k].dtype}, the model has {tuple(v.shape)} {v.dtype})"
            )


@contextlib.contextmanager
def _training_context(device: torch.device, cfg_threads: int):
    """Per-level seeding of the global RNG without disturbing the caller's; the configured CPU
    thread count; cuDNN autotuning on CUDA (fixed input shapes, so it pays off after the
    first batches). The caller's settings are restored afterwards.

    CPU runs are reproducible without ``torch.use_deterministic_algorithms``: the CPU kernels
    used here are deterministic for a fixed thread count (tests/test_train_runs.py checks it),
    and the flag would import torch._inductor, seconds of start-up for every run.
    """
    benchmark, threads = torch.backends.cudnn.benchmark, torch.get_num_threads()
    torch.backends.cudnn.benchmark = device.type == "cuda" or benchmark
    if cfg_threads:
        torch.set_num_threads(cfg_threads)
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            yield
    finally:
        torch.backends.cudnn.benchmark = benchmark
        torch.set_num_threads(threads)


@dataclasses.dataclass
class _Session:
    cfg: TrainConfig
    method: str  # cfg.label, read once: it may open the --mask-from/--signs-from run
    out: Path
    device: torch.device
    reporter: Reporter
    is_main: bool
    summaries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    epochs: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # of the current level
    # How the run executes, not what it computes (recorded beside the config, not in it):
    amp: str = "auto"
    compile: bool = False
    world_size: int = 1
    forward: nn.Module | None = None  # the model as trained: DDP and/or compiled wrapper

    def manifest(self, complete: bool) -> None:
        if self.is_main:
            write_manifest(
                self.out,
                self.cfg.to_json(),
                self.summaries,
                complete,
                method=self.method,
                device=self.device.type,
                threads=torch.get_num_threads(),
                amp=amp_label(self.amp, self.device),
                compile=self.compile,
                world_size=self.world_size,
            )


def resume_point(cfg: TrainConfig, out: Path) -> list[int]:
    """The completed levels of the run in ``out`` that ``--resume`` continues after; empty for
    a run that has not completed one (or no run at all: RunFolder.prepare sorts that out)."""
    if not out.is_dir():
        return []
    manifest = read_manifest(out)
    if manifest is None:
        if any(LEVEL_RE.match(p.name) for p in out.iterdir()):
            raise UsageError(
                f"--resume {out}: no run.json there, so it is not a signscope run to continue"
            )
        return []
    config_for_resume(manifest.get("config", {}), dataclasses.asdict(cfg), str(out))
    return completed_levels(out)


def _metrics_for(out: Path, levels: list[int]) -> list[dict]:
    path = out / METRICS
    if not path.exists():
        return []
    keep = set(levels)
    return [
        r
        for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
        if r.get("level") in keep
    ]


def _summary(level: int, meta: Mapping[str, str], seconds: float) -> dict[str, Any]:
    acc = meta.get("test_acc")
    return {
        "level": level,
        "density": float(meta["density"]),
        "alive": int(meta["alive"]),
        "test_acc": None if acc is None else float(acc),
        "train_loss": float(meta["train_loss"]),
        "train_acc": float(meta["train_acc"]),
        "seconds": round(seconds, 3),
    }


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    reporter: Reporter | None = None,
    on_level_start: LevelCallback | None = None,
    rank: int = 0,
    world_size: int = 1,
    amp: str = "auto",
    compile: bool = False,
) -> Path:
    """Train ``cfg`` into the run folder ``out`` and return it.

    ``resume`` continues the run in ``out`` after its last complete level (``cfg`` must match
    the recorded config except for :data:`trainers.config.RESUMABLE_CHANGES`); ``force``
    replaces an existing run. ``on_level_start(level, model)`` is called once the model holds
    the weights a level starts from, before its first step.

    ``amp`` (trainers.loop.AMP_MODES) and ``compile`` (torch.compile) choose how the steps
    run; they are recorded in run.json but may change on ``resume``. With ``world_size > 1``
    this process is rank ``rank`` of a process group the caller has initialised.
    """
    cfg = cfg.validate()
    check_modes(resume, force)
    if amp not in AMP_MODES:
        raise UsageError(f"--amp {amp!r}: unknown; choose one of {', '.join(AMP_MODES)}")
    distributed.per_rank_batch(cfg.batch_size, world_size)
    distributed.check_group(world_size)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device(
            "cuda", torch.cuda.current_device()
        )  # LOCAL_RANK's GPU under torchrun
    out = Path(out)
    reporter = reporter or Reporter()
    session = _Session(
        cfg,
        cfg.label,
        out,
        device,
        reporter,
        is_main=rank == 0,
        amp=amp,
        compile=compile,
        world_size=world_size,
    )
    # Rank 0 holds the folder's lock from before anything is read until training ends.
    with RunFolder(out, owner=session.is_main, resume=resume, force=force) as folder:
        done = resume_point(cfg, out) if resume else []
        if len(done) > cfg.levels:
            raise UsageError(
                f"--resume {out}: the run already has {len(done)} levels, "
                f"more than --levels {cfg.levels}"
            )
        distributed.barrier()  # every rank has read the run's state before rank 0 changes it
        return _train(session, folder, done, on_level_start, rank, world_size)


def _train(
    session: _Session,
    folder: RunFolder,
    done: list[int],
    on_level_start: LevelCallback | None,
    rank: int,
    world_size: int,
) -> Path:
    cfg, out, device, reporter = session.cfg, session.out, session.device, session.reporter
    with _training_context(device, cfg.threads):
        cuda = device.type == "cuda"
        data = load_dataset(
            cfg.dataset,
            root=cfg.data_root,
            download=cfg.download,
            synthetic_shape=cfg.synthetic_shape,
            synthetic_classes=cfg.synthetic_classes,
            synthetic_size=cfg.synthetic_size,
            seed=cfg.seed,
            workers=cfg.data_workers,
        ).to(device, channels_last=cuda)
        model = build_model(
            cfg.model,
            data.num_classes,
            data.input_shape,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        model = model.to(
            device, memory_format=torch.channels_last if cuda else torch.preserve_format
        )
        prunable = prunable_parameters(model)
        total = sum(p.numel() for p in prunable.values())
        check_levels(cfg, total)
        variants = LevelVariants(cfg, prunable)  # checks --mask-from RUN
        # Nothing has been written or removed up to here: a refused setting costs nothing.
        if session.is_main:
            folder.prepare(done)
        session.forward = distributed.wrap(model, device)
        if session.compile:
            session.forward = compile_model(session.forward)
        init_state, rewind_state = _references(session, model, done)

        bn_names = batchnorm_state_names(model)
        steps, drop_last = steps_per_epoch(
            data.n_train, distributed.per_rank_batch(cfg.batch_size, world_size), world_size
        )

        if done:
            prev_state, masks = _restore(session, model, done)
        else:
            prev_state, masks = None, dense_masks(prunable)
        session.manifest(complete=False)
        reporter.watch_hint(out)

        reporter.start(
            cfg.levels,
            cfg.epochs,
            total_steps=cfg.levels * cfg.epochs * steps,
            done_steps=len(done) * cfg.epochs * steps,
        )
        try:
            for level in range(len(done), cfg.levels):
                torch.manual_seed(level_seed(cfg.seed, level, Stream.GLOBAL))
                if level == 0:
                    start = init_state
                else:
                    given = variants.masks(level, device)
                    masks = (
                        given
                        if given is not None
                        else _prune(session, level, model, data, prev_state, masks, prunable, total)
                    )
                    distributed.broadcast_tensors(masks.values())
                    flips = variants.flips(
                        level, masks, level_seed(cfg.seed, level, Stream.PERTURB)
                    )
                    start = level_start_state(
                        cfg.method,
                        prev_state=prev_state,
                        rewind_state=rewind_state,
                        masks=masks,
                        bn_names=bn_names,
                        bn_rewind=cfg.bn_rewind,
                        signs=variants.signs(level, device),
                        flips=flips,
                    )
                model.load_state_dict(start)
                distributed.broadcast_state(model)
                reporter.level_start(level)
                if on_level_start is not None:
                    on_level_start(level, model)
                rewind_state = _train_level(
                    session,
                    model,
                    data,
                    level,
                    masks,
                    prunable,
                    steps,
                    drop_last,
                    rewind_state,
                    rank,
                    world_size,
                )
                prev_state = masked(snapshot(model), masks)
                _finish_level(session, level, prev_state, masks)
        finally:
            reporter.close()
        session.manifest(complete=True)
        if session.is_main:
            folder.finish()
    return out


def _restore(session: _Session, model: nn.Module, done: list[int]) -> tuple[State, dict]:
    """End state and masks of the last complete level; metrics and summaries of the done levels."""
    out, last = session.out, done[-1]
    state, masks, _ = read_level(out, last)
    _check_fits(state, model.state_dict(), f"--resume {out / level_filename(last)}")
    records = _metrics_for(out, done)
    for lvl in done:
        secs = sum(r.get("seconds", 0.0) for r in records if r["level"] == lvl)
        session.summaries.append(_summary(lvl, read_level(out, lvl)[2], secs))
    device = session.device
    return {k: v.to(device) for k, v in state.items()}, {k: v.to(device) for k, v in masks.items()}


def _prune(
    session: _Session,
    level: int,
    model: nn.Module,
    data: TrainingData,
    prev_state: State,
    masks: dict,
    prunable: Mapping[str, torch.Tensor],
    total: int,
) -> dict:
    """Masks of ``level`` chosen from the end of level-1 by the configured criterion."""
    cfg = session.cfg
    model.load_state_dict(prev_state)  # criteria that look at the network see the end of level-1
    generator = torch.Generator(session.device).manual_seed(
        level_seed(cfg.seed, level, Stream.PRUNE)
    )
    return prune(
        criterion_name(cfg.prune, cfg.criterion),
        PruneContext(
            level=level,
            weights={n: prev_state[n] for n in prunable},
            masks=masks,
            n_keep=target_alive(total, cfg.prune_fraction, level),
            model=model,
            dataset=data,
            generator=generator,
            config=cfg,
        ),
    )


def _references(session: _Session, model: nn.Module, done: list[int]) -> tuple[State, State | None]:
    """The initial state and, when already known, the rewind point; written to the run."""
    cfg, out, device = session.cfg, session.out, session.device
    model_state = model.state_dict()
    rewind = None
    if done:  # resuming after level 0: the run's own files are the references
        init = read_reference(out, "init")
        rewind = read_reference(out, "rewind")
        _check_fits(init, model_state, f"--resume {out / INIT_FILE}")
        _check_fits(rewind, model_state, f"--resume {out / REWIND_FILE}")
    elif cfg.init_from is not None:
        src = Path(cfg.init_from)
        if not src.is_dir():
            raise SignscopeError(f"--init-from {src}: not a run folder")
        init = read_reference(src, "init")
        rewind = read_reference(src, "rewind")
        _check_fits(init, model_state, f"--init-from {src / INIT_FILE}")
        _check_fits(rewind, model_state, f"--init-from {src / REWIND_FILE}")
    else:
        init = snapshot(model)
    if session.is_main and not done:
        write_reference(out, "init", init)
        if rewind is not None:
            write_reference(out, "rewind", rewind)
    init = {k: v.to(device) for k, v in init.items()}
    if rewind is not None:
        rewind = {k: v.to(device) for k, v in rewind.items()}
    return init, rewind


def _record_rewind(session: _Session, model: nn.Module) -> State:
    state = snapshot(model)
    if session.is_main:
        write_reference(session.out, "rewind", state)
    return state


def _train_level(
    session: _Session,
    model: nn.Module,
    data: TrainingData,
    level: int,
    masks,
    prunable,
    steps: int,
    drop_last: bool,
    rewind_state: State | None,
    rank: int,
    world_size: int,
) -> State | None:
    """Train one level for cfg.epochs epochs; returns the rewind point (recorded in level 0)."""
    cfg, reporter = session.cfg, session.reporter
    session.epochs = []
    needs_rewind = level == 0 and rewind_state is None
    if needs_rewind and cfg.rewind_epoch == 0:
        rewind_state, needs_rewind = _record_rewind(session, model), False
    enforcer = MaskEnforcer(prunable, masks)
    optimizer = make_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay, session.device)
    scaler = make_scaler(session.amp, session.device)
    reduce = distributed.all_reduce_sum if world_size > 1 else None
    batch = distributed.per_rank_batch(cfg.batch_size, world_size)
    generator = torch.Generator(data.device).manual_seed(level_seed(cfg.seed, level, Stream.DATA))
    lrs = level_lrs(cfg.schedule, steps, cfg.epochs, cfg.lr_warmup_epochs, cfg.lr)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        stats = train_one_epoch(
            session.forward,
            optimizer,
            data.batches(
                batch,
                generator,
                train=True,
                rank=rank,
                world_size=world_size,
                drop_last=drop_last,
            ),
            lrs[epoch - 1],
            enforcer,
            on_step=lambda _: reporter.step(),
            amp=session.amp,
            scaler=scaler,
            reduce=reduce,
        )
        if not math.isfinite(stats.loss):
            raise SignscopeError(
                f"training diverged at level {level}, epoch {epoch} (loss {stats.loss}); "
                "try a lower --lr"
            )
        test_acc = None
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            distributed.broadcast_buffers(model)  # evaluate with rank 0's BatchNorm statistics
            test_acc = evaluate(
                session.forward,
                data.batches(EVAL_BATCH, generator, train=False, rank=rank, world_size=world_size),
                amp=session.amp,
            )
        record = {
            "level": level,
            "epoch": epoch,
            "lr": lrs[epoch - 1][-1],
            "train_loss": stats.loss,
            "train_acc": stats.acc,
            "test_acc": test_acc,
            "seconds": round(time.perf_counter() - t0, 4),
        }
        if session.is_main:
            atomic_append_line(session.out / METRICS, json.dumps(record))
        reporter.epoch(record)
        session.epochs.append(record)
        if needs_rewind and epoch == cfg.rewind_epoch:
            rewind_state, needs_rewind = _record_rewind(session, model), False
    return rewind_state


def _finish_level(session: _Session, level: int, state: State, masks) -> None:
    last = session.epochs[-1]
    alive, density = alive_and_density(masks)
    if session.is_main:
        write_level(
            session.out,
            level,
            state,
            masks,
            session.method,
            last["test_acc"],
            train_loss=repr(last["train_loss"]),
            train_acc=repr(last["train_acc"]),
        )
    seconds = sum(r["seconds"] for r in session.epochs)
    summary = _summary(
        level,
        {
            "density": repr(density),
            "alive": str(alive),
            "test_acc": repr(last["test_acc"]),
            "train_loss": repr(last["train_loss"]),
            "train_acc": repr(last["train_acc"]),
        },
        seconds,
    )
    session.summaries.append(summary)
    session.manifest(complete=False)
    session.reporter.level_done(summary)
