"""The pruning criteria and their registry: global magnitude, balanced random masks, SNIP
and SynFlow.

Each chooses the masks of level L from the end of level L-1, keeping ``ctx.n_keep`` of the
weights still alive (pruned weights never come back). ``magnitude`` is the paper's global
magnitude pruning (A.3: "we keep 80% of the currently remaining parameters of highest
magnitude"). The paper uses SNIP and SynFlow iteratively, "following the same prune-train
procedure as LRR and IMP" (A.4, Fig 16), and random masks with balanced layerwise sparsity for
IMP-rand and LRR-rand (Sec. 3, Fig 2b,c). Criteria that need data or gradients (SNIP, SynFlow)
or allocate per layer (balanced random) fit one signature because the context carries the
model, the data and a seeded generator.

:data:`CRITERIA` at the end of this module lists them all by name: the registry does not
depend on which modules happen to have been imported.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from signscope.errors import SignscopeError
from trainers.models import prunable_parameters
from trainers.pruning import Masks, PruneContext, keep_top_global

Scores = dict[str, torch.Tensor]
Criterion = Callable[[PruneContext], Masks]
RANDOM = "random"  # the registry name behind --prune random (balanced layerwise random masks)


# --------------------------------------------------------------------------- magnitude


def magnitude(ctx: PruneContext) -> Masks:
    """Global magnitude pruning over all prunable weights (Frankle & Carbin, 2019; paper A.3)."""
    return keep_top_global({n: w.abs() for n, w in ctx.weights.items()}, ctx.masks, ctx.n_keep)


# --------------------------------------------------------------------------- balanced random


def balanced_counts(sizes: Sequence[int], n_keep: int) -> list[int]:
    """Alive weights per layer for balanced layerwise sparsity (Gadhikar et al., 2023).

    Every layer keeps the same number X of weights, capped at its size; X is the largest
    level with sum(min(size, X)) <= n_keep. The r weights still missing go one each to the r
    largest layers above X (ties: module order), so the total is exactly ``n_keep``. The
    counts never grow when ``n_keep`` shrinks, so every level's random mask can be drawn
    inside the previous level's.
    """
    if not 0 <= n_keep <= sum(sizes):
        raise ValueError(f"cannot keep {n_keep} of {sum(sizes)} weights")
    lo, hi = 0, max(sizes, default=0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(s, mid) for s in sizes) <= n_keep:
            lo = mid
        else:
            hi = mid - 1
    counts = [min(s, lo) for s in sizes]
    below = sorted((i for i, s in enumerate(sizes) if s > lo), key=lambda i: (-sizes[i], i))
    for i in below[: n_keep - sum(counts)]:
        counts[i] += 1
    return counts


def balanced_random(ctx: PruneContext) -> Masks:
    """Random masks with balanced layerwise sparsity (``--prune random``): in every layer a
    uniformly random subset of the weights still alive, of the size :func:`balanced_counts`
    gives. The draw uses a CPU generator seeded like ``ctx.generator`` (run seed and level), so
    a run gets the same masks on every device."""
    names = list(ctx.weights)
    counts = balanced_counts([ctx.weights[n].numel() for n in names], ctx.n_keep)
    seed = ctx.generator.initial_seed() if ctx.generator is not None else ctx.level
    generator = torch.Generator().manual_seed(seed)
    out: Masks = {}
    for name, k in zip(names, counts, strict=True):
        prev = ctx.masks[name]
        alive = prev.reshape(-1).nonzero().squeeze(1).cpu()
        if alive.numel() < k:  # balanced_counts is monotone, so only a foreign mask gets here
            raise RuntimeError(
                f"{name}: {alive.numel()} weights alive, the balanced mask needs {k}"
            )
        keep = torch.zeros(prev.numel(), dtype=torch.bool)
        keep[alive[torch.randperm(alive.numel(), generator=generator)[:k]]] = True
        out[name] = keep.reshape(prev.shape).to(prev.device)
    return out


# --------------------------------------------------------------------------- SNIP


def _prunable(model: nn.Module, names: Iterable[str]) -> list[torch.Tensor]:
    params = prunable_parameters(model)
    return [params[n] for n in names]


def snip_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[str]) -> Scores:
    """SNIP's connection sensitivity |w ⊙ ∂L/∂w| (Lee et al., 2019) for the prunable tensors
    ``names``, with L the mean cross-entropy of the batch (x, y).

    BatchNorm runs in training mode, as in the training step the scores stand for; its running
    statistics are restored afterwards, and no ``.grad`` is touched, so the model is left as
    it was.
    """
    params = _prunable(model, names)
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    was_training = model.training
    model.train()
    try:
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(buffers[k])
    return {n: (p.detach() * g).abs() for n, p, g in zip(names, params, grads, strict=True)}


def snip(ctx: PruneContext) -> Masks:
    """Iterative SNIP (paper Fig 16): scores on one training batch of ``--batch-size``
    examples, drawn (with augmentation) from the level's prune generator, then global top-k."""
    x, y = next(iter(ctx.dataset.batches(ctx.config.batch_size, ctx.generator, train=True)))
    return keep_top_global(snip_scores(ctx.model, x, y, list(ctx.weights)), ctx.masks, ctx.n_keep)


# --------------------------------------------------------------------------- SynFlow


def synflow_scores(model: nn.Module, input_shape: Sequence[int], names: Sequence[str]) -> Scores:
    """SynFlow's synaptic saliency |w ⊙ ∂R/∂w| (Tanaka et al., 2020) for the prunable tensors
    ``names``: R is the sum of the outputs of the network whose every parameter and buffer is
    replaced by its absolute value, for one all-ones input of ``input_shape``, BatchNorm in
    eval mode (so it applies |running statistics|, |gamma| and |beta|).

    The pass runs on a float64 copy, because R multiplies the weights of every layer and
    overflows float32 in a deep network; the scores are divided by their maximum, which keeps
    their order and makes them representable in float32. The model itself is not touched.
    """
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    params = _prunable(net, names)
    device = params[0].device
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    grads = torch.autograd.grad(net(ones).sum(), params)
    scores = {n: (p.detach() * g).abs() for n, p, g in zip(names, params, grads, strict=True)}
    top = max(float(s.max()) for s in scores.values())
    if not 0 < top < float("inf"):
        raise SignscopeError(
            f"SynFlow scores are {'all zero' if top == 0 else 'not finite'} "
            "(the network's output vanished or overflowed even in float64)"
        )
    return {n: s / top for n, s in scores.items()}


def synflow(ctx: PruneContext) -> Masks:
    """Iterative SynFlow (paper Fig 16): one scoring round per level, then global top-k.

    SynFlow at initialisation iterates 100 prune rounds to avoid layer collapse when it removes
    most weights at once; here every level removes only ``--prune-fraction`` and the
    prune-train levels themselves are the iteration, as in the authors' code.
    """
    shape = ctx.dataset.input_shape
    scores = synflow_scores(ctx.model, shape, list(ctx.weights))
    return keep_top_global(scores, ctx.masks, ctx.n_keep)


# --------------------------------------------------------------------------- registry

CRITERIA: dict[str, Criterion] = {
    "magnitude": magnitude,
    RANDOM: balanced_random,
    "snip": snip,
    "synflow": synflow,
}


def criterion_name(prune: str, criterion: str) -> str:
    """The registry entry that chooses the masks: ``--prune random`` or ``--criterion``."""
    return RANDOM if prune == "random" else criterion


def prune(criterion: str, ctx: PruneContext) -> Masks:
    """The masks of ``ctx.level`` as the registered ``criterion`` chooses them."""
    masks = CRITERIA[criterion](ctx)
    alive = sum(int(m.sum()) for m in masks.values())
    if alive != ctx.n_keep:  # a criterion's contract; a mismatch would break density 0.8^L
        raise RuntimeError(f"criterion {criterion!r} kept {alive} weights, expected {ctx.n_keep}")
    return masks
