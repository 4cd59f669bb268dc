"""Masks: how many weights a level keeps, the global top-k that most criteria end in, how
level L starts (SPEC section 1's table), and keeping pruned weights at exactly zero while
training.

Which weights a level keeps is a criterion, a function of a :class:`PruneContext` that returns
the new masks; the criteria and their registry live in :mod:`trainers.pruning_criteria`, which
builds on this module (never the other way round).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

Masks = dict[str, torch.Tensor]  # state-dict name -> bool tensor, True = alive


@dataclass
class PruneContext:
    """What a criterion may look at when it chooses the masks of ``level``."""

    level: int
    weights: Mapping[str, torch.Tensor]  # prunable tensors at the end of level-1 (pruned ones 0)
    masks: Masks  # masks of level-1
    n_keep: int  # alive weights the new masks must have in total
    model: torch.nn.Module | None = None  # holding the end-of-(level-1) state
    dataset: Any = None
    generator: torch.Generator | None = None
    config: Any = None


def target_alive(total: int, prune_fraction: float, level: int) -> int:
    """Alive prunable weights at ``level``: round(total * (1 - f)^level).

    Computing the target from the total, not from the previous level's count, keeps the
    density within half a weight of 0.8^L at every level instead of letting rounding drift.
    """
    return int(round(total * (1.0 - prune_fraction) ** level))


def keep_top_global(scores: Mapping[str, torch.Tensor], masks: Masks, n_keep: int) -> Masks:
    """Keep the ``n_keep`` alive entries of highest score over all tensors together.

    Pruned entries never come back (their score is -inf). Ties are broken by position: the
    tensors in registry (module) order, then row-major within a tensor, earlier wins, so the
    result does not depend on the device or the sort implementation.
    """
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    alive = torch.cat([masks[n].reshape(-1) for n in names])
    if n_keep > int(alive.sum()):
        raise ValueError(f"cannot keep {n_keep} weights: only {int(alive.sum())} are alive")
    if torch.isnan(flat[alive]).any():
        from signscope.errors import SignscopeError

        raise SignscopeError("pruning scores contain NaN: training diverged (try a lower --lr)")
    flat = torch.where(alive, flat, torch.tensor(float("-inf"), device=flat.device))
    order = torch.sort(flat, descending=True, stable=True).indices
    keep = torch.zeros_like(alive)
    keep[order[:n_keep]] = True
    out: Masks = {}
    start = 0
    for n in names:
        numel = scores[n].numel()
        out[n] = keep[start : start + numel].reshape(scores[n].shape)
        start += numel
    return out


def dense_masks(weights: Mapping[str, torch.Tensor]) -> Masks:
    return {n: torch.ones(w.shape, dtype=torch.bool, device=w.device) for n, w in weights.items()}


def masked(state: Mapping[str, torch.Tensor], masks: Masks) -> dict[str, torch.Tensor]:
    """``state`` with the masked tensors zeroed (+0.0, exactly as the level files store them)."""
    out = dict(state)
    for n, m in masks.items():
        v = state[n]
        out[n] = torch.where(m.to(v.device), v, torch.zeros((), dtype=v.dtype, device=v.device))
    return out


def _imp_start(prev, rewind, bn_names, bn_rewind):
    # Weight rewinding rewinds the whole network, BatchNorm included.
    return dict(rewind)


def _lrr_start(prev, rewind, bn_names, bn_rewind):
    start = dict(prev)
    if bn_rewind:
        start.update({k: rewind[k] for k in bn_names})
    return start


START_RULES = {"imp": _imp_start, "lrr": _lrr_start}


def level_start_state(
    method: str,
    *,
    prev_state: Mapping[str, torch.Tensor],
    rewind_state: Mapping[str, torch.Tensor],
    masks: Masks,
    bn_names: Iterable[str] = (),
    bn_rewind: bool = False,
    signs: Mapping[str, torch.Tensor] | None = None,
    flips: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The state dict level L >= 1 starts from (SPEC section 1's table).

    imp: rewind point ⊙ mask_L. lrr: end of level L-1 ⊙ mask_L, with ``bn_rewind`` the
    BatchNorm parameters and running statistics (``bn_names``) taken from the rewind point.

    ``signs`` (``--signs-from``, paper Fig 7c) replaces those weights by
    |rewind point| × sign; where a sign is 0 the rewind value is kept, so every alive weight
    starts with its rewind magnitude. ``flips`` (``--perturb-signs``, paper Fig 6, 7a,b)
    negates the weights where it is True, after everything else.
    """
    if method not in START_RULES:
        raise ValueError(f"unknown method {method!r}")
    start = START_RULES[method](prev_state, rewind_state, list(bn_names), bn_rewind)
    for name, sign in (signs or {}).items():
        r = rewind_state[name]
        sign = sign.to(device=r.device, dtype=r.dtype)
        start[name] = torch.where(sign != 0, r.abs() * sign, r)
    for name, flip in (flips or {}).items():
        start[name] = torch.where(flip.to(start[name].device), -start[name], start[name])
    return masked(start, masks)


class MaskEnforcer:
    """Multiplies the prunable parameters by their masks after every optimizer step.

    Momentum and weight decay would otherwise move pruned weights off zero. One fused
    ``torch._foreach_mul_`` over all masked tensors keeps that to a single kernel launch
    group per step on CUDA. Fully dense tensors are left out, so level 0 costs nothing.
    """

    def __init__(self, params: Mapping[str, torch.nn.Parameter], masks: Masks):
        self.params: list[torch.Tensor] = []
        self.factors: list[torch.Tensor] = []
        for name, p in params.items():
            m = masks[name]
            if bool(m.all()):
                continue
            factor = torch.empty_like(p)  # same device, dtype and memory format as the weight
            factor.copy_(m)
            self.params.append(p)
            self.factors.append(factor)

    @torch.no_grad()
    def apply(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.factors)
