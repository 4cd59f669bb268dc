"""One epoch of training and one evaluation pass: the plain shape of torchvision's reference
``train_one_epoch`` / ``evaluate``, with the GPU habits of airbench.

On CUDA the data sits on the device (trainers.datasets.memory), except ImageNet, which
DataLoader workers stream from disk and which is copied to the device batch by batch
(trainers.datasets.imagenet). The model runs in channels_last under bf16 autocast (BatchNorm
parameters and statistics stay fp32), and the loss and accuracy are summed on the device and
read once per epoch: no per-step ``.item()``, so the host never waits for the GPU inside an
epoch. On CPU the same code runs in plain fp32.

``amp`` picks the autocast dtype: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16``, ``fp16``
(with a :class:`torch.amp.GradScaler`, which fp16's narrow range needs) or ``off``. Under
data-parallel training the caller passes ``reduce``, which sums the epoch's loss and counts
over all ranks in one collective.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainers.pruning import MaskEnforcer

# The batch the trainer evaluates with: no activations are kept for a backward pass, so it can
# be much larger than a training batch (streamed data caps it, imagenet.EVAL_BATCH_CAP).
EVAL_BATCH = 2048
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass
class EpochStats:
    loss: float
    acc: float
    examples: int


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device``; None means plain fp32.

    ``auto`` is bf16 on CUDA (fp32's range, so no loss scaling) and fp32 on CPU, which keeps
    CPU runs exact and reproducible."""
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    try:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]
    except KeyError:
        raise ValueError(
            f"unknown amp mode {amp!r}; choose one of {', '.join(AMP_MODES)}"
        ) from None


def amp_label(amp: str, device: torch.device) -> str:
    """``amp`` with ``auto`` resolved: what a run records and a benchmark reports."""
    dtype = amp_dtype(amp, device)
    return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "off"}[dtype]


def autocast_for(device: torch.device, amp: str = "auto"):
    dtype = amp_dtype(amp, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def make_scaler(amp: str, device: torch.device):
    """A GradScaler for fp16 (gradients would underflow without one), None otherwise.

    With torch's fused SGD the scaler hands the unscale and the inf check to the optimizer
    kernel, so a scaled step still needs no host synchronisation."""
    if amp_dtype(amp, device) is not torch.float16:
        return None
    return torch.amp.GradScaler(device.type)


def compile_model(model: nn.Module) -> nn.Module:
    """``torch.compile`` with static shapes: the training batch, its last partial batch and
    the evaluation batches each get their own graph instead of one dynamic-shape graph that
    would serve the full training batches more slowly."""
    return torch.compile(model, dynamic=False)


class ForeachSGD:
    """SGD with momentum and weight decay: torch.optim.SGD's update (no dampening, no Nesterov)
    in a few foreach calls.

    Used on CPU because constructing any torch.optim optimizer imports torch._dynamo, which
    costs about 4 s of CPU time per process, as much as a whole demo level. It exposes the
    ``param_groups[0]["lr"]`` that the loop sets, and the ``params`` a GradScaler unscales,
    like a torch optimizer.
    """

    def __init__(self, params, lr: float, momentum: float, weight_decay: float):
        self.params = [p for p in params if p.requires_grad]
        self.param_groups = [{"params": self.params, "lr": lr}]
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buffers: list[torch.Tensor] | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("ForeachSGD expects a gradient for every parameter")
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        if self.momentum:
            if self.buffers is None:
                self.buffers = [g.detach().clone() for g in grads]
            else:
                torch._foreach_mul_(self.buffers, self.momentum)
                torch._foreach_add_(self.buffers, grads)
            grads = self.buffers
        torch._foreach_add_(self.params, grads, alpha=-self.param_groups[0]["lr"])


def make_optimizer(
    model: nn.Module, lr: float, momentum: float, weight_decay: float, device: torch.device
):
    """SGD over all parameters: torch's fused kernel on CUDA (one launch for the whole
    update), :class:`ForeachSGD` on CPU."""
    if device.type == "cuda":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, fused=True
        )
    return ForeachSGD(model.parameters(), lr, momentum, weight_decay)


def train_one_epoch(
    model: nn.Module,
    optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    lrs: Sequence[float],
    masks: MaskEnforcer,
    *,
    on_step: Callable[[int], None] | None = None,
    amp: str = "auto",
    scaler=None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EpochStats:
    """Train over ``batches`` with ``lrs[i]`` at step ``i``; masks are re-applied after every
    optimizer step so pruned weights stay exactly zero under momentum and weight decay.

    ``scaler`` (from :func:`make_scaler`) scales the loss for fp16; ``reduce`` combines the
    per-rank sums (loss, correct, examples) into totals over all ranks."""
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device, dtype=torch.float32)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    autocast = autocast_for(device, amp)
    step = -1
    for step, (x, y) in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lrs[step]
        with autocast:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        masks.apply()
        n = y.shape[0]
        loss_sum += loss.detach().float() * n
        correct += (logits.detach().argmax(1) == y).sum()
        seen += n
        if on_step is not None:
            on_step(step + 1)
    if step + 1 != len(lrs):  # the schedule was computed for a different number of steps
        raise RuntimeError(f"epoch ran {step + 1} steps, schedule has {len(lrs)}")
    if reduce is not None:
        # float64 holds the counts exactly; one collective for all three numbers.
        totals = reduce(
            torch.stack(
                [
                    loss_sum.double(),
                    correct.double(),
                    torch.tensor(float(seen), dtype=torch.float64, device=device),
                ]
            )
        )
        loss_sum, correct, seen = totals[0], totals[1], int(totals[2])
    loss_val = float(loss_sum) / max(seen, 1)
    return EpochStats(loss=loss_val, acc=int(correct) / max(seen, 1), examples=seen)


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], amp: str = "auto"
) -> float:
    """Top-1 accuracy over ``batches`` (the test set, in order, large batches)."""
    model.eval()
    device = next(model.parameters()).device
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    with autocast_for(device, amp):
        for x, y in batches:
            correct += (model(x).argmax(1) == y).sum()
            seen += y.shape[0]
    return int(correct) / max(seen, 1)


def steps_per_epoch(n_train: int, batch_size: int, world_size: int = 1) -> tuple[int, bool]:
    """Optimizer steps per epoch and the ``drop_last`` that gives them.

    Mirrors the data sets' ``batches`` (trainers.datasets.base.shard): each rank sees
    ``n // world_size`` examples. A last batch of a single example is dropped, because
    BatchNorm cannot normalise one value per channel.
    """
    per_rank = n_train // world_size
    drop_last = per_rank % batch_size == 1 and per_rank > 1
    steps = per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)
    return steps, drop_last
