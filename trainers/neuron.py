"""The single hidden neuron experiment: IMP vs LRR per initial sign quadrant.

Paper Sec. 2 (set-up and Eq. 1), Sec. 2.3 and Fig. 2a (d = 10), Fig. 18 (d in {1, 2, 5, 10}).
A network f(x) = a·relu(w·x) with x ~ N(0, I/d) learns t(x) = relu(x_1) from n noisy labels
y = t(x) + ζ, ζ ~ N(0, σ²), by minimising L = 1/(2n) Σ (f(x_i) − y_i)² with full-batch LBFGS.
Level 0 trains all d inputs; each of the ``prune_levels`` later levels keeps the inputs of
largest |w_k| (the same fraction each time, down to one input) and trains again:

- IMP rewinds the kept w_k and a to their values at initialisation (paper Sec. 2, "IMP":
  θ^(i)(0) = θ^(0)(0); the theory's variant, not the warm-up rewinding of the CNN runs);
- LRR continues from the values the previous level ended with.

Each run draws its data and |w(0)| once and is replayed in all four quadrants (sign of a(0),
sign of w_1(0)), so quadrants differ only in the initial signs (a paired design). A run
succeeds when ||f − t||² / ||t||² < 0.1 on fresh noise-free samples at the final level.

Design choices, and what they do to the result, are in docs/neuron.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import torch

METHODS = ("imp", "lrr")
OPTIMIZERS = ("lbfgs", "gd")
# Row order of the output: the theory's success quadrant first (Theorem 2.1).
QUADRANTS = ((1, 1), (1, -1), (-1, 1), (-1, -1))
Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class NeuronConfig:
    d: int = 10
    samples: int = 1000  # training set size n; the paper does not state it
    noise: float = 0.01  # σ² of the label noise (paper: 0.01)
    runs: int = 10  # per quadrant (paper: 10)
    prune_levels: int = 3  # levels after the dense one (paper: 3)
    steps: int = 1000  # LBFGS iterations per level at most (paper: "1000 epochs each")
    seed: int = 0
    test_samples: int = 10_000
    threshold: float = 0.1  # success: relative error below this
    optimizer: str = "lbfgs"  # or "gd": plain gradient descent, close to the theory's gradient flow
    lr: float | None = None  # gradient descent only; None: d/2 (see gd_lr)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.optimizer == "lbfgs" and self.lr is not None:
            raise ValueError(
                "lr applies to gradient descent only (LBFGS picks its steps by line search)"
            )

    @property
    def gd_lr(self) -> float:
        """Step size of gradient descent. The loss curvature scales like E[x_k²] = 1/d, so a
        step of d/2 keeps lr·curvature near 1/2 (stable, close to the flow) for every d."""
        return self.lr if self.lr is not None else self.d / 2


@dataclass(frozen=True)
class RunData:
    """One run's draws, shared by its four quadrants."""

    x: torch.Tensor  # (n, d) training inputs
    y: torch.Tensor  # (n,) noisy labels
    x_test: torch.Tensor  # (test_samples, d)
    t_test: torch.Tensor  # (test_samples,) noise-free targets
    w_init: torch.Tensor  # (d,) Gaussian draw before the quadrant's signs are imposed


@dataclass(frozen=True)
class LevelState:
    """Where a method stands after a level: the kept input indices and their trained values."""

    alive: np.ndarray  # sorted indices into the d inputs
    a: float
    w: torch.Tensor  # values of the alive inputs, in the order of ``alive``


def keep_schedule(d: int, prune_levels: int) -> list[int]:
    """Inputs kept at levels 0..prune_levels: d·q^L rounded half up, q = d^(-1/prune_levels).

    Keeping the same fraction q at every level ends at exactly one input (paper Sec. 2.3:
    90% sparsity at d = 10 gives 10, 5, 2, 1). The clamp keeps the count from growing or
    reaching zero where rounding would, e.g. for d = 2 over three levels (2, 2, 1, 1).
    """
    if d < 1 or prune_levels < 1:
        raise ValueError(
            f"need d >= 1 and prune_levels >= 1, got d={d}, prune_levels={prune_levels}"
        )
    q = d ** (-1.0 / prune_levels)
    keep = [d]
    for level in range(1, prune_levels + 1):
        # half up: Python's round() sends halves to the even neighbour (2.5 -> 2)
        k = 1 if level == prune_levels else math.floor(d * q**level + 0.5)
        keep.append(max(1, min(keep[-1], k)))
    return keep


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point
    at 0/10 or 10/10, which are the typical outcomes here.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0/n and n/n the endpoint is exactly 0 or 1; say so instead of 0.9999999999999999.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def draw_run(cfg: NeuronConfig, run: int) -> RunData:
    """The data and initial magnitudes of one run; depends only on (seed, d, run)."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, cfg.d, run]))
    scale = 1.0 / math.sqrt(cfg.d)  # x ~ N(0, I/d)
    x = rng.normal(0.0, scale, (cfg.samples, cfg.d))
    y = np.maximum(x[:, 0], 0.0) + rng.normal(0.0, math.sqrt(cfg.noise), cfg.samples)
    # w(0) ~ N(0, I/d) keeps a(0)·||w(0)|| = ||w(0)||² near 1, inside the 0 < |a|·||w|| <= 2
    # that Lemma 2.2 and Theorem 2.3 assume.
    w_init = rng.normal(0.0, scale, cfg.d)
    x_test = rng.normal(0.0, scale, (cfg.test_samples, cfg.d))
    as_t = torch.from_numpy
    return RunData(
        as_t(x), as_t(y), as_t(x_test), as_t(np.maximum(x_test[:, 0], 0.0)), as_t(w_init)
    )


def initial_params(w_init: torch.Tensor, a_sign: int, w1_sign: int) -> tuple[float, torch.Tensor]:
    """Balanced Gaussian initialisation with prescribed signs: |a(0)| = ||w(0)||."""
    w = w_init.clone()
    w[0] = w1_sign * w[0].abs()
    return a_sign * float(w.norm()), w


def loss_and_grad(
    a: torch.Tensor, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L = 1/(2n) Σ_i (a·relu(w·x_i) − y_i)² and its gradient for a batch of B problems.

    Shapes: a (B,), w (B, k), x (B, n, k), y (B, n); returns loss (B,), dL/da (B,),
    dL/dw (B, k). Written out (paper A.1, Eq. 2) because autograd costs several times
    the arithmetic on tensors this small; the ReLU derivative at 0 is 0, as in torch.relu.
    """
    n = x.shape[1]
    z = torch.bmm(x, w.unsqueeze(-1)).squeeze(-1)
    h = z.clamp_min(0.0)
    r = a.unsqueeze(-1) * h - y
    grad_a = (r * h).sum(-1) / n
    grad_w = a.unsqueeze(-1) * torch.bmm((r * (z > 0)).unsqueeze(1), x).squeeze(1) / n
    return 0.5 * (r * r).mean(-1), grad_a, grad_w


Problem = tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]
"""(x restricted to the alive inputs (n, k), y (n,), a at the start, w at the start (k,))."""


def fit_lbfgs(problems: Sequence[Problem], steps: int) -> list[tuple[float, torch.Tensor]]:
    """Full-batch LBFGS, one optimiser per problem.

    One ``torch.optim.LBFGS.step`` with at most ``steps`` iterations and a strong-Wolfe
    line search: each run keeps its own curvature history and step sizes (LBFGS on the sum
    of the runs' losses would share them) and stops once it has converged.
    """
    out = []
    for x, y, a, w in problems:
        theta = torch.cat([torch.tensor([a], dtype=x.dtype), w.to(x.dtype)]).requires_grad_(True)
        opt = torch.optim.LBFGS(
            [theta],
            lr=1.0,
            max_iter=steps,
            max_eval=steps + steps // 4,
            line_search_fn="strong_wolfe",
        )
        xb, yb = x.unsqueeze(0), y.unsqueeze(0)

        def closure(theta=theta, xb=xb, yb=yb) -> torch.Tensor:
            t = theta.detach()
            loss, grad_a, grad_w = loss_and_grad(t[:1], t[1:].unsqueeze(0), xb, yb)
            theta.grad = torch.cat([grad_a, grad_w[0]])
            return loss[0]

        opt.step(closure)
        theta = theta.detach()
        out.append((float(theta[0]), theta[1:].clone()))
    return out


def fit_gd(problems: Sequence[Problem], steps: int, lr: float) -> list[tuple[float, torch.Tensor]]:
    """Plain full-batch gradient descent, all problems as one batch: a discretised gradient
    flow (paper Eq. 1), the dynamics the theorems are about. Problems must share (n, k);
    batching is exact here because each problem's update depends on its own gradient only."""
    x = torch.stack([p[0] for p in problems])
    y = torch.stack([p[1] for p in problems])
    a = torch.tensor([p[2] for p in problems], dtype=x.dtype)
    w = torch.stack([p[3] for p in problems]).to(x.dtype)
    for _ in range(steps):
        _, grad_a, grad_w = loss_and_grad(a, w, x, y)
        a -= lr * grad_a
        w -= lr * grad_w
    return [(float(a[i]), w[i].clone()) for i in range(len(problems))]


def fit(cfg: NeuronConfig, problems: Sequence[Problem]) -> list[tuple[float, torch.Tensor]]:
    """Train every problem with the configured optimiser; results in the same order."""
    if cfg.optimizer == "gd":
        return fit_gd(problems, cfg.steps, cfg.gd_lr)
    return fit_lbfgs(problems, cfg.steps)


def relative_error(state: LevelState, x_test: torch.Tensor, t_test: torch.Tensor) -> float:
    """||f − t||² / ||t||² on the noise-free test set."""
    f = state.a * (x_test[:, state.alive] @ state.w).clamp_min(0.0)
    return float(((f - t_test) ** 2).sum() / (t_test**2).sum())


def prune(state: LevelState, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the ``keep`` alive inputs of largest |w| (ties: lower index); returns
    (new alive indices into the d inputs, their positions within ``state.alive``)."""
    order = np.argsort(-state.w.abs().numpy(), kind="stable")[:keep]
    pos = np.sort(order)
    return state.alive[pos], pos


def run_experiment(
    cfg: NeuronConfig, progress: Callable[[int], None] | None = None
) -> pl.DataFrame:
    """Every run in every quadrant, IMP and LRR; one row per (method, quadrant, run).

    Levels advance in lockstep over all runs so that gradient descent can train a whole
    level as one batch. Level 0 is the same computation for IMP and LRR, so it is trained
    once. ``progress(levels_done)`` is called after each level.
    """
    keep = keep_schedule(cfg.d, cfg.prune_levels)
    data = [draw_run(cfg, run) for run in range(cfg.runs)]
    cells = [(run, q) for run in range(cfg.runs) for q in QUADRANTS]
    inits = [initial_params(data[run].w_init, *q) for run, q in cells]
    every = np.arange(cfg.d)
    previous_threads = torch.get_num_threads()
    # Intra-op threads only add overhead on tensors of a few thousand elements, and one
    # thread also fixes the reduction order, so a seed gives bit-identical results.
    torch.set_num_threads(1)
    try:
        dense_fit = fit(
            cfg,
            [
                (data[run].x, data[run].y, a0, w0)
                for (run, _), (a0, w0) in zip(cells, inits, strict=True)
            ],
        )
        dense = [LevelState(every, a, w) for a, w in dense_fit]
        states = {method: list(dense) for method in METHODS}
        if progress is not None:
            progress(1)
        for level in range(1, cfg.prune_levels + 1):
            problems, kept = [], []
            for method in METHODS:
                for (run, _), (a0, w0), state in zip(cells, inits, states[method], strict=True):
                    alive, pos = prune(state, keep[level])
                    if method == "imp":  # rewind the kept weights (and a) to initialisation
                        start = (a0, w0[alive])
                    else:  # continue from where the previous level ended
                        start = (state.a, state.w[pos])
                    problems.append((data[run].x[:, alive], data[run].y, *start))
                    kept.append(alive)
            trained = list(zip(kept, fit(cfg, problems), strict=True))
            for i, method in enumerate(METHODS):
                chunk = trained[i * len(cells) : (i + 1) * len(cells)]
                states[method] = [LevelState(alive, a, w) for alive, (a, w) in chunk]
            if progress is not None:
                progress(level + 1)
    finally:
        torch.set_num_threads(previous_threads)
    rows = []
    for method in METHODS:
        for i, ((run, (a_sign, w1_sign)), state) in enumerate(
            zip(cells, states[method], strict=True)
        ):
            test = (data[run].x_test, data[run].t_test)
            error = relative_error(state, *test)
            rows.append(
                {
                    "method": method,
                    "a_sign": a_sign,
                    "w1_sign": w1_sign,
                    "d": cfg.d,
                    "run": run,
                    "rel_error": error,
                    "success": error < cfg.threshold,
                    "kept_x1": bool(state.alive[0] == 0),
                    "a_final": state.a,
                    "w1_final": float(state.w[0]) if state.alive[0] == 0 else 0.0,
                    "dense_rel_error": relative_error(dense[i], *test),
                }
            )
    return pl.DataFrame(rows)


def quadrant_table(per_run: pl.DataFrame) -> pl.DataFrame:
    """Success rate with its 95% Wilson interval and mean relative error per quadrant."""
    rows = []
    for d in sorted(per_run["d"].unique()):
        for method in METHODS:
            for a_sign, w1_sign in QUADRANTS:
                cell = per_run.filter(
                    (pl.col("d") == d)
                    & (pl.col("method") == method)
                    & (pl.col("a_sign") == a_sign)
                    & (pl.col("w1_sign") == w1_sign)
                )
                n = cell.height
                if n == 0:
                    continue
                successes = int(cell["success"].sum())
                low, high = wilson_interval(successes, n)
                rows.append(
                    {
                        "method": method,
                        "a_sign": a_sign,
                        "w1_sign": w1_sign,
                        "d": d,
                        "runs": n,
                        "success_rate": successes / n,
                        "ci_low": low,
                        "ci_high": high,
                        "mean_rel_error": float(cell["rel_error"].mean()),
                    }
                )
    return pl.DataFrame(rows)


def neuron_tables(
    base: NeuronConfig,
    ds: Sequence[int] | None = None,
    per_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, pl.DataFrame]:
    """``quadrants`` (and ``runs`` when ``per_run``) for ``base.d`` or for each d in ``ds``.

    ``progress(levels_done, levels_total)`` counts trained levels over all dimensions.
    """
    configs = [replace(base, d=d) for d in (ds or [base.d])]
    total = len(configs) * (base.prune_levels + 1)
    frames = []
    for i, cfg in enumerate(configs):
        offset = i * (base.prune_levels + 1)
        report = (
            None if progress is None else (lambda k, offset=offset: progress(offset + k, total))
        )
        frames.append(run_experiment(cfg, report))
    runs = pl.concat(frames)
    tables = {"quadrants": quadrant_table(runs)}
    if per_run:
        tables["runs"] = runs
    return tables
