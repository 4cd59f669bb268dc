"""``signscope bench``: training throughput of the signscope loop against a plain PyTorch loop,
measured in one process on one device.

The signscope loop is the one ``signscope train`` runs (trainers.loop.train_one_epoch): the
data set resident on the device and augmented there in batches (trainers.datasets.memory),
channels_last and bf16 autocast on CUDA, torch's fused SGD, the masks of a sparse network
re-applied with one foreach multiply per step, and loss/accuracy kept on the device until the
end.

The reference loop is what a plain PyTorch training script does (torchvision's reference
``train_one_epoch``): a ``DataLoader`` over CPU tensors with per-sample torchvision transforms
(``RandomCrop(size, padding=4)`` + ``RandomHorizontalFlip``) in worker processes, a host to
device copy per batch, fp32 in the default memory format, ``torch.optim.SGD`` with its
defaults, the masks multiplied in one tensor at a time, and ``loss.item()`` every step. Both
loops train the same architecture from the same masked initial weights with the same
hyperparameters; cuDNN autotuning is on for both, so the ratio measures the loop, not
autotuning.

Each loop first runs ``warmup`` steps (cuDNN autotuning, torch.compile, DataLoader workers
starting), then ``steps`` timed steps: with CUDA events on a GPU, with the wall clock on a CPU.
Seconds per epoch are extrapolated from the timed steps to :data:`EPOCH_IMAGES` images (the
CIFAR-10 training set), not measured over a whole epoch. With ``profile``, a few more steps of
the signscope loop run under the PyTorch profiler, and the operators that took the most
device time (CPU time on a CPU) come back as a second table: where an epoch's time goes.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from signscope.errors import SignscopeError, UsageError
from trainers.config import DEFAULTS
from trainers.datasets import load_dataset
from trainers.datasets.memory import CROP_PAD, Dataset
from trainers.loop import (
    AMP_MODES,
    amp_label,
    compile_model,
    make_optimizer,
    make_scaler,
    train_one_epoch,
)
from trainers.models import build_model, prunable_parameters
from trainers.pruning import MaskEnforcer, Masks, dense_masks, keep_top_global

EPOCH_IMAGES = 50_000  # CIFAR-10's training set


@dataclass(frozen=True)
class BenchConfig:
    model: str = "resnet18"
    dataset: str = "synthetic"
    data_root: str | None = None
    batch_size: int = 256
    device: str = "cuda"
    compile: bool = False
    amp: str = "auto"
    density: float = 0.2
    steps: int = 50
    warmup: int = 10
    workers: int = min(8, os.cpu_count() or 1)
    seed: int = 0
    reference: bool = True
    profile: bool = False

    def validate(self) -> BenchConfig:
        if self.amp not in AMP_MODES:
            raise UsageError(f"--amp {self.amp!r}: unknown; choose one of {', '.join(AMP_MODES)}")
        if not 0.0 < self.density <= 1.0:
            raise UsageError(f"--density {self.density}: must lie in (0, 1]")
        if self.batch_size < 2:
            raise UsageError(f"--batch-size {self.batch_size}: need at least 2 (BatchNorm)")
        if self.steps < 1 or self.warmup < 0:
            raise UsageError(
                f"--steps {self.steps} --warmup {self.warmup}: need steps >= 1, warmup >= 0"
            )
        if self.workers < 0:
            raise UsageError(
                f"--workers {self.workers}: must be 0 (load in the main process) or more"
            )
        return self


PROFILE_STEPS = 10
PROFILE_TOP = 15


@dataclass(frozen=True)
class LoopTiming:
    loop: str
    amp: str
    compile: bool
    seconds: float  # of the timed steps
    images: int
    profile: list[dict] | None = None

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def device_label(device: torch.device) -> str:
    """The card (or the CPU thread count): a benchmark number means nothing without it."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''})"


def run_bench(cfg: BenchConfig) -> dict[str, list[dict]]:
    """Time both loops. Table ``bench``: one row per loop (the signscope loop first) with the
    ratio of their throughputs in ``speedup``; table ``profile`` when ``cfg.profile``."""
    from trainers.train import resolve_device

    cfg = cfg.validate()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        data = _bench_data(cfg)
        timings = [_time_signscope(cfg, data, device)]
        if cfg.reference:
            timings.append(_time_reference(cfg, data, device))
    finally:
        torch.backends.cudnn.benchmark = benchmark
    base = timings[1].images_per_s if cfg.reference else None
    rows = [
        {
            "loop": t.loop,
            "device": device_label(device),
            "model": cfg.model,
            "dataset": cfg.dataset,
            "batch_size": cfg.batch_size,
            "density": cfg.density,
            "amp": t.amp,
            "compile": t.compile,
            "workers": cfg.workers if t.loop == "reference" else None,
            "warmup_steps": cfg.warmup,
            "timed_steps": cfg.steps,
            "seconds": round(t.seconds, 6),
            "images_per_s": round(t.images_per_s, 1),
            "s_per_epoch": round(EPOCH_IMAGES / t.images_per_s, 3),
            "speedup": None if base is None else round(t.images_per_s / base, 3),
        }
        for t in timings
    ]
    tables = {"bench": rows}
    if timings[0].profile is not None:
        tables["profile"] = timings[0].profile
    return tables


def _bench_data(cfg: BenchConfig) -> Dataset:
    # Synthetic data only needs as many images as the steps consume (up to one CIFAR epoch).
    n_train = min(EPOCH_IMAGES, cfg.batch_size * (cfg.warmup + cfg.steps))
    if cfg.dataset == "imagenet":
        raise UsageError(
            "--dataset imagenet: bench compares loops over a data set held in "
            "memory; ImageNet is streamed from disk (use synthetic, cifar10, ...)"
        )
    data = load_dataset(cfg.dataset, root=cfg.data_root, synthetic_size=(n_train, 1), seed=cfg.seed)
    if data.train_y.shape[0] < cfg.batch_size:
        raise SignscopeError(
            f"--dataset {cfg.dataset} has {data.train_y.shape[0]} training images, "
            f"fewer than --batch-size {cfg.batch_size}"
        )
    return data


def _masked_model(cfg: BenchConfig, data: Dataset) -> tuple[nn.Module, Masks]:
    """The initial network pruned to ``density`` by global magnitude (as a level of IMP/LRR
    would be), seeded so both loops start from the same weights."""
    model = build_model(
        cfg.model,
        data.num_classes,
        data.input_shape,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    prunable = prunable_parameters(model)
    total = sum(p.numel() for p in prunable.values())
    masks = keep_top_global(
        {n: p.abs() for n, p in prunable.items()},
        dense_masks(prunable),
        max(1, round(cfg.density * total)),
    )
    with torch.no_grad():
        for name, p in prunable.items():
            p.mul_(masks[name])
    return model, masks


def _timed(device: torch.device, fn: Callable[[], None]) -> float:
    """Seconds ``fn`` takes; on CUDA between two events around the work it queues."""
    if device.type != "cuda":
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def _endless(make: Callable[[], Iterator]) -> Iterator:
    while True:
        yield from make()


def _time_signscope(cfg: BenchConfig, data: Dataset, device: torch.device) -> LoopTiming:
    cuda = device.type == "cuda"
    resident = data.to(device, channels_last=cuda)
    model, masks = _masked_model(cfg, data)
    model = model.to(device, memory_format=torch.channels_last if cuda else torch.preserve_format)
    prunable = prunable_parameters(model)
    enforcer = MaskEnforcer(prunable, {n: m.to(device) for n, m in masks.items()})
    forward = compile_model(model) if cfg.compile else model
    optimizer = make_optimizer(model, DEFAULTS.lr, DEFAULTS.momentum, DEFAULTS.weight_decay, device)
    scaler = make_scaler(cfg.amp, device)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    # Full batches only: a last partial batch would cost torch.compile another graph.
    stream = _endless(
        lambda: resident.batches(cfg.batch_size, generator, train=True, drop_last=True)
    )

    def run(n: int) -> None:
        if n:
            train_one_epoch(
                forward,
                optimizer,
                itertools.islice(stream, n),
                [DEFAULTS.lr] * n,
                enforcer,
                amp=cfg.amp,
                scaler=scaler,
            )

    run(cfg.warmup)
    seconds = _timed(device, lambda: run(cfg.steps))
    profile = _profile(device, lambda: run(PROFILE_STEPS)) if cfg.profile else None
    return LoopTiming(
        "signscope",
        amp_label(cfg.amp, device),
        cfg.compile,
        seconds,
        cfg.steps * cfg.batch_size,
        profile,
    )


def _profile(device: torch.device, fn: Callable[[], None]) -> list[dict]:
    """The operators with the most self time over ``fn``: device time on CUDA (what bounds a
    GPU step), CPU time on a CPU; times per step."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        fn()
    events = list(prof.key_averages())

    def self_us(e) -> float:
        return e.self_device_time_total if cuda else e.self_cpu_time_total

    total = sum(self_us(e) for e in events) or 1.0
    top = sorted(events, key=self_us, reverse=True)[:PROFILE_TOP]
    return [
        {
            "op": e.key,
            "calls_per_step": round(e.count / PROFILE_STEPS, 2),
            "self_ms_per_step": round(self_us(e) / 1000 / PROFILE_STEPS, 4),
            "share": round(self_us(e) / total, 4),
            "clock": "device" if cuda else "cpu",
        }
        for e in top
    ]


class _PerSample(torch.utils.data.Dataset):
    """CPU tensors with a per-sample transform, the shape of a torchvision data set."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int):
        x = self.x[i]
        return (self.transform(x) if self.transform is not None else x), self.y[i]


def _time_reference(cfg: BenchConfig, data: Dataset, device: torch.device) -> LoopTiming:
    from torchvision import transforms

    transform = None
    if data.augment:
        transform = transforms.Compose(
            [
                transforms.RandomCrop(data.image_size, padding=CROP_PAD),
                transforms.RandomHorizontalFlip(),
            ]
        )
    cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        _PerSample(data.train_x, data.train_y, transform),
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=cfg.workers,
        pin_memory=cuda,
        drop_last=True,
        persistent_workers=cfg.workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    model, masks = _masked_model(cfg, data)
    model = model.to(device)
    pairs = [
        (p, masks[n].to(device=device, dtype=p.dtype))
        for n, p in prunable_parameters(model).items()
    ]
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=DEFAULTS.lr,
        momentum=DEFAULTS.momentum,
        weight_decay=DEFAULTS.weight_decay,
    )
    stream = _endless(lambda: iter(loader))

    def run(n: int) -> None:
        model.train()
        for x, y in itertools.islice(stream, n):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for p, m in pairs:
                    p.mul_(m)
            loss.item()  # the running-loss log line of a plain loop: a host sync per step

    run(cfg.warmup)
    seconds = _timed(device, lambda: run(cfg.steps))
    return LoopTiming("reference", "off", False, seconds, cfg.steps * cfg.batch_size)
