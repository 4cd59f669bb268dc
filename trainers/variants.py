"""Masks and signs taken from another run, and sign perturbation: the experiments with which
the paper separates the mask from parameter optimisation (Sec. 3).

- ``--mask-from RUN``: every level L >= 1 trains with RUN's level-L mask instead of pruning
  (IMP on the LRR mask, LRR on the IMP mask; Fig 3, 4, 2d).
- ``--signs-from RUN``: as ``--mask-from``, and every level starts from
  |rewind point| × sign(RUN's level-L weights) ("IMP init + LRR mask + LRR sign"; Fig 7c, 12).
- ``--perturb-signs F --perturb-at-level L``: the start of level L has the signs of a fraction
  F of the alive weights of every prunable layer flipped (Fig 6, 7a,b).

:class:`LevelVariants` answers, per level, the three questions the trainer asks: which masks
(None: prune as configured), which signs, which flips. The start state itself is built by
:func:`trainers.pruning.level_start_state`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch

from signscope.errors import RunFormatError, SignscopeError
from trainers.checkpoint import load_file, split_masks
from trainers.pruning import Masks

Tensors = dict[str, torch.Tensor]


class SourceRun:
    """The run given to ``--mask-from``/``--signs-from``: its masks and weights per level.

    Any run signscope reads will do (a signscope run, an imported one, a plain folder of
    checkpoints: without ``mask/NAME`` tensors, nonzero weights are alive). It must have the
    architecture of the run being trained (the same prunable tensor names and shapes) and at
    least as many levels; both are checked when the run starts, before anything is written.
    """

    def __init__(
        self, path: str | Path, option: str, prunable: Mapping[str, torch.Tensor], levels: int
    ):
        from signscope.run import open_run

        self.option, self.path = option, Path(path)
        where = f"{option} {self.path}"
        try:
            run = open_run(self.path)
        except RunFormatError as exc:
            raise SignscopeError(f"{option}: {exc}") from None
        theirs = run.architecture()
        ours = {n: tuple(p.shape) for n, p in prunable.items()}
        if theirs != ours:
            raise SignscopeError(f"{where}: different architecture ({_difference(ours, theirs)})")
        if len(run.levels) < levels:
            raise SignscopeError(
                f"{where}: has {len(run.levels)} levels (0..{len(run.levels) - 1}), "
                f"this run needs {levels} (--levels {levels})"
            )
        self._files = [run.checkpoint(level).path for level in run.levels]
        self._names = list(ours)
        self._cached: tuple[int, Tensors, Masks] | None = None

    def level(self, level: int, device: torch.device) -> tuple[Tensors, Masks]:
        """(prunable weights, masks) of RUN's level ``level`` on ``device``."""
        if self._cached is None or self._cached[0] != level:
            tensors, _ = load_file(self._files[level])
            state, masks = split_masks(tensors)
            weights = {n: state[n] for n in self._names}
            if not masks:  # a plain run: alive means nonzero (SPEC section 2)
                masks = {n: w != 0 for n, w in weights.items()}
            if not all(torch.isfinite(w).all() for w in weights.values()):
                raise SignscopeError(f"{self.option} {self._files[level]}: weights are not finite")
            self._cached = (level, weights, {n: masks[n] for n in self._names})
        _, weights, masks = self._cached
        return (
            {n: w.to(device) for n, w in weights.items()},
            {n: m.to(device) for n, m in masks.items()},
        )


def _difference(ours: Mapping[str, tuple], theirs: Mapping[str, tuple]) -> str:
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    if missing or extra:
        return f"prunable tensors missing there: {missing[:3]}, not in this model: {extra[:3]}"
    name = next(n for n in ours if ours[n] != theirs[n])
    return f"{name} is {list(theirs[name])} there, {list(ours[name])} in this model"


def sign_flips(masks: Masks, fraction: float, generator: torch.Generator) -> Masks:
    """Per prunable layer, round(fraction × alive) of its alive weights, uniformly at random.

    The count is rounded half up per layer, so every layer is within half a weight of the
    requested fraction. ``generator`` (CPU) makes the choice the same on every device.
    """
    out: Masks = {}
    for name, mask in masks.items():
        alive = mask.reshape(-1).nonzero().squeeze(1).cpu()
        k = math.floor(fraction * alive.numel() + 0.5)
        flip = torch.zeros(mask.numel(), dtype=torch.bool)
        flip[alive[torch.randperm(alive.numel(), generator=generator)[:k]]] = True
        out[name] = flip.reshape(mask.shape).to(mask.device)
    return out


class LevelVariants:
    """What ``--mask-from``, ``--signs-from`` and ``--perturb-signs`` change at each level."""

    def __init__(self, cfg, prunable: Mapping[str, torch.Tensor]):
        self.cfg = cfg
        path = cfg.signs_from or cfg.mask_from
        option = "--signs-from" if cfg.signs_from else "--mask-from"
        self.source = SourceRun(path, option, prunable, cfg.levels) if path else None

    def masks(self, level: int, device: torch.device) -> Masks | None:
        """RUN's masks of ``level`` (>= 1), or None when this run prunes by itself."""
        return None if self.source is None else self.source.level(level, device)[1]

    def signs(self, level: int, device: torch.device) -> Tensors | None:
        """sign(RUN's level-``level`` weights) with ``--signs-from``, else None."""
        if self.source is None or not self.cfg.signs_from:
            return None
        weights, _ = self.source.level(level, device)
        return {n: torch.sign(w) for n, w in weights.items()}

    def flips(self, level: int, masks: Masks, seed: int) -> Masks | None:
        """The weights whose sign the start of ``level`` flips (``--perturb-signs``), else None;
        ``seed`` is the run's seed for this level's perturbation."""
        if self.cfg.perturb_at_level != level or not self.cfg.perturb_signs:
            return None
        return sign_flips(masks, self.cfg.perturb_signs, torch.Generator().manual_seed(seed))
