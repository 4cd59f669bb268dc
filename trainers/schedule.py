"""Learning-rate schedules of one level (paper A.3 (i), (ii)); every level restarts them.

The LR is set per optimizer step rather than per epoch: the warmup then rises smoothly even
when it lasts a single epoch (the demo), and a cosine over few epochs does not stair-step.
Step boundaries of ``step-warmup`` fall on epoch starts, as in the paper.
"""

from __future__ import annotations

import math

# step-warmup in A.3 (ii): x0.1 at epochs 60 and 120 of the 140 epochs that follow the warmup.
STEP_MILESTONES = (60 / 140, 120 / 140)
STEP_GAMMA = 0.1
# imagenet-step in A.3 (iii): 0.01 throughout the warmup, then the peak divided by 10 every
# 30 epochs.
IMAGENET_WARMUP_LR = 0.01
IMAGENET_STEP_EPOCHS = 30


def step_milestones(epochs: int, warmup_epochs: int) -> tuple[int, ...]:
    """Epochs (counted from the level's start) at which step-warmup multiplies the LR by 0.1.

    The paper's 60 and 120 of 140 are scaled to the epochs after the warmup and rounded:
    150 epochs with 10 of warmup give (70, 130).
    """
    rest = epochs - warmup_epochs
    return tuple(warmup_epochs + round(rest * f) for f in STEP_MILESTONES)


def lr_at(
    schedule: str, step: int, steps_per_epoch: int, epochs: int, warmup_epochs: int, peak: float
) -> float:
    """The LR of 0-based ``step`` of a level with ``epochs`` x ``steps_per_epoch`` steps.

    Warmup rises linearly from peak/warmup_steps at the first step to the peak at the last
    warmup step (never 0, which would waste a step). Then ``cosine-warmup`` decays along
    half a cosine towards 0, ``step-warmup`` divides by 10 at :func:`step_milestones` and
    ``constant`` keeps the peak. ``imagenet-step`` is the paper's ImageNet schedule (A.3 iii):
    a constant 0.01 during the warmup instead of a ramp, then the peak divided by 10 every
    30 epochs.
    """
    warm = warmup_epochs * steps_per_epoch
    if schedule == "imagenet-step":
        if step < warm:
            return IMAGENET_WARMUP_LR
        return peak * STEP_GAMMA ** ((step - warm) // (IMAGENET_STEP_EPOCHS * steps_per_epoch))
    if step < warm:
        return peak * (step + 1) / warm
    if schedule == "constant":
        return peak
    if schedule == "cosine-warmup":
        span = (epochs - warmup_epochs) * steps_per_epoch
        return peak * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / span))
    if schedule == "step-warmup":
        epoch = step // steps_per_epoch
        drops = sum(epoch >= m for m in step_milestones(epochs, warmup_epochs))
        return peak * STEP_GAMMA**drops
    raise ValueError(f"unknown schedule {schedule!r}")


def level_lrs(
    schedule: str, steps_per_epoch: int, epochs: int, warmup_epochs: int, peak: float
) -> list[list[float]]:
    """Per-epoch lists of per-step LRs for one level, computed once on the host so the
    training loop only assigns Python floats (no device work, no synchronisation)."""
    return [
        [
            lr_at(schedule, e * steps_per_epoch + s, steps_per_epoch, epochs, warmup_epochs, peak)
            for s in range(steps_per_epoch)
        ]
        for e in range(epochs)
    ]
