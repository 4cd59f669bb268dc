"""Test accuracy against density, per method, with a 95% Student-t interval over seeds
(SPEC section 3; the paper reports mean and 95% CI over 3 seeds, A.3).

Runs are grouped by their method label and their config without the settings that only
change where or how a run was made (seed, device, data location, preset name, ...); each
group's runs are the replicates. When two groups share a method label (say LRR on two data
sets), the label gets the config values that tell them apart: ``lrr [dataset=cifar100]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

import polars as pl

from signscope.run import Run, open_run

# The config keys that do not make a different experiment are marked where the settings are
# defined. trainers.config imports neither torch nor anything else of the trainers.
from trainers.config import NOT_IDENTITY

RUNS_SCHEMA = {
    "run": pl.String,
    "method": pl.String,
    "seed": pl.Int64,
    "level": pl.Int64,
    "density": pl.Float64,
    "test_acc": pl.Float64,
}
ACC_SCHEMA = {
    "method": pl.String,
    "level": pl.Int64,
    "density": pl.Float64,
    "sparsity": pl.Float64,
    "replicates": pl.Int64,
    "mean": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
}


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student's t with ``df`` degrees of freedom, by bisection
    on the CDF F(t) = 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2."""
    tail = 2.0 * (1.0 - p)
    lo, hi = 0.0, 1.0
    while _betainc(df / 2.0, 0.5, df / (df + hi * hi)) > tail:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if _betainc(df / 2.0, 0.5, df / (df + mid * mid)) > tail:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def mean_ci(
    values: list[float], level: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """Mean and the two-sided Student-t interval; the interval is null for fewer than 2 values."""
    n = len(values)
    if n == 0:
        return None, None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None, None
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def _identity(run: Run) -> str:
    return json.dumps(
        {k: v for k, v in run.config.items() if k not in NOT_IDENTITY}, sort_keys=True, default=str
    )


def _labels(runs: list[Run]) -> list[str]:
    """Method label per run, made unique per group when configs differ."""
    base = [r.method or r.label for r in runs]
    idents = [_identity(r) for r in runs]
    labels = list(base)
    for method in dict.fromkeys(base):
        members = [i for i, m in enumerate(base) if m == method]
        if len({idents[i] for i in members}) < 2:
            continue
        configs = [
            {k: v for k, v in runs[i].config.items() if k not in NOT_IDENTITY} for i in members
        ]
        keys = sorted({k for c in configs for k in c})
        differing = [
            k
            for k in keys
            if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1
        ]
        for i, cfg in zip(members, configs, strict=True):
            detail = ", ".join(f"{k}={cfg.get(k)}" for k in differing)
            labels[i] = f"{method} [{detail}]"
    return labels


def accuracy_tables(runs: Iterable) -> dict[str, pl.DataFrame]:
    """``accuracy`` (per method and level) and ``runs`` (per run and level)."""
    runs = [open_run(r) for r in runs]
    labels = _labels(runs)
    run_rows = []
    for run, label in zip(runs, labels, strict=True):
        seed = run.config.get("seed")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        for row in run.summary().iter_rows(named=True):
            run_rows.append(
                {
                    "run": run.label,
                    "method": label,
                    "seed": seed,
                    "level": row["level"],
                    "density": row["density"],
                    "test_acc": row["test_acc"],
                }
            )
    runs_df = pl.DataFrame(run_rows, schema=RUNS_SCHEMA)
    acc_rows = []
    for label in dict.fromkeys(labels):
        group = runs_df.filter(pl.col("method") == label)
        for level in sorted(set(group["level"].to_list())):
            at = group.filter(pl.col("level") == level)
            accs = [v for v in at["test_acc"].to_list() if v is not None]
            density = at["density"].mean()
            mean, low, high = mean_ci(accs)
            acc_rows.append(
                {
                    "method": label,
                    "level": level,
                    "density": density,
                    "sparsity": None if density is None else 1.0 - density,
                    "replicates": len(accs),
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return {"accuracy": pl.DataFrame(acc_rows, schema=ACC_SCHEMA), "runs": runs_df}
