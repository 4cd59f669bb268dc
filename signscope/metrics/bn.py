"""BatchNorm scale (gamma) statistics per BN layer (SPEC section 3; paper Fig 10, 11, A.4).

A BN layer is ``NAME`` where ``NAME.weight`` is 1-D and ``NAME.running_var`` exists; gamma is
``NAME.weight``. Statistics use the whole layer (population std, ddof=0; quartiles with
linear interpolation). ``frac_zero`` is the fraction with |gamma| < 1e-3 (the "gamma = 0"
channels of A.4), ``frac_negative`` the fraction with gamma < 0.

Histogram: one fixed grid for every layer, level and run, bins [k/20, (k+1)/20) of width
0.05, so rows from different runs line up. Each layer gets every bin from its lowest to its
highest occupied one (empty bins in between have count 0, so plots show no gaps).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from signscope.metrics.stream import nonfinite_error
from signscope.tensordata import Handles, as_float, read_tensor

ZERO_TOL = 1e-3
BINS_PER_UNIT = 20  # bin width 0.05
# A layer whose gammas spread over more bins than this (absurd values) lists only
# occupied bins, so one outlier cannot produce millions of rows.
MAX_CONTIGUOUS_BINS = 2000

BN_SCHEMA = {
    "run": pl.String,
    "level": pl.Int64,
    "layer": pl.String,
    "count": pl.Int64,
    "mean": pl.Float64,
    "std": pl.Float64,
    "min": pl.Float64,
    "q25": pl.Float64,
    "median": pl.Float64,
    "q75": pl.Float64,
    "max": pl.Float64,
    "frac_zero": pl.Float64,
    "frac_negative": pl.Float64,
}
HIST_SCHEMA = {
    "run": pl.String,
    "level": pl.Int64,
    "layer": pl.String,
    "bin_low": pl.Float64,
    "bin_high": pl.Float64,
    "count": pl.Int64,
}


def gamma_stats(gamma: np.ndarray) -> dict[str, float | int | None]:
    """count, mean, std, min, quartiles, max, frac_zero and frac_negative of one layer."""
    n = int(gamma.size)
    if n == 0:
        return {
            "count": 0,
            **dict.fromkeys(
                ("mean", "std", "min", "q25", "median", "q75", "max", "frac_zero", "frac_negative")
            ),
        }
    g = gamma.astype(np.float64)
    q25, median, q75 = np.quantile(g, [0.25, 0.5, 0.75])
    return {
        "count": n,
        "mean": float(g.mean()),
        "std": float(g.std()),
        "min": float(g.min()),
        "q25": float(q25),
        "median": float(median),
        "q75": float(q75),
        "max": float(g.max()),
        "frac_zero": float(np.count_nonzero(np.abs(g) < ZERO_TOL)) / n,
        "frac_negative": float(np.count_nonzero(g < 0)) / n,
    }


def gamma_histogram(gamma: np.ndarray) -> list[tuple[float, float, int]]:
    """(bin_low, bin_high, count) rows on the fixed 0.05 grid."""
    if gamma.size == 0:
        return []
    # gamma * 20 is exact in float64 for float32 inputs, so floor() puts edge values right.
    k = np.floor(gamma.astype(np.float64) * BINS_PER_UNIT).astype(np.int64)
    lo, hi = int(k.min()), int(k.max())
    if hi - lo + 1 <= MAX_CONTIGUOUS_BINS:
        counts = np.bincount(k - lo, minlength=hi - lo + 1)
        bins = range(lo, hi + 1)
    else:
        bins, counts = np.unique(k, return_counts=True)
        bins = bins.tolist()
    return [
        (b / BINS_PER_UNIT, (b + 1) / BINS_PER_UNIT, int(c))
        for b, c in zip(bins, counts, strict=True)
    ]


def bn_tables(run, level: int) -> dict[str, pl.DataFrame]:
    """The ``bn`` and ``bn_hist`` tables for one level of ``run``."""
    ckpt = run.checkpoint(level)
    stats_rows, hist_rows = [], []
    with Handles() as handles:
        for layer in run.batchnorm:
            name = f"{layer}.weight"
            info = ckpt.info(name)
            gamma = as_float(read_tensor(handles, ckpt, name), info.dtype)
            if not np.isfinite(gamma).all():
                raise nonfinite_error(ckpt, name)
            stats_rows.append(
                {"run": run.label, "level": level, "layer": layer, **gamma_stats(gamma)}
            )
            hist_rows += [
                {
                    "run": run.label,
                    "level": level,
                    "layer": layer,
                    "bin_low": lo,
                    "bin_high": hi,
                    "count": c,
                }
                for lo, hi, c in gamma_histogram(gamma)
            ]
    return {
        "bn": pl.DataFrame(stats_rows, schema=BN_SCHEMA),
        "bn_hist": pl.DataFrame(hist_rows, schema=HIST_SCHEMA),
    }
