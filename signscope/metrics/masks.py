"""Mask overlap of two runs per level, globally and per layer (SPEC section 3; paper Fig 2-4).

``intersection`` |A∩B|, ``union`` |A∪B| and ``jaccard`` = |A∩B|/|A∪B| count weights alive in
each run's mask (nonzero weights for runs without masks).

``jaccard_chance`` is what two independent, uniformly random masks with the same per-layer
alive counts would give. For one layer of n weights with k_a and k_b alive, the expected
intersection is k_a·k_b/n and the expected union k_a + k_b − k_a·k_b/n; the chance Jaccard is
their ratio (the ratio of expectations, which is exact as n grows and within 1/n of the
expected ratio otherwise). The global row adds the layers' expected intersections and
expected unions before dividing, so it respects the layerwise densities.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from signscope.metrics.compare import common_levels, layer_groups, walk_pairs
from signscope.metrics.stream import load_alive, popcount
from signscope.run import open_run

SCHEMA = {
    "run_a": pl.String,
    "run_b": pl.String,
    "level": pl.Int64,
    "layer": pl.String,
    "intersection": pl.Int64,
    "union": pl.Int64,
    "jaccard": pl.Float64,
    "jaccard_chance": pl.Float64,
}


def _overlap(handles, ca, cb, name, mask_a, mask_b, piece) -> np.ndarray:
    alive_a = load_alive(handles, ca, name, mask_a, piece.start, piece.count)
    alive_b = load_alive(handles, cb, name, mask_b, piece.start, piece.count)
    inter = popcount(alive_a & alive_b)
    k_a, k_b = popcount(alive_a), popcount(alive_b)
    return np.array([inter, k_a + k_b - inter, k_a, k_b])


def chance_jaccard(k_a: np.ndarray, k_b: np.ndarray, n: np.ndarray) -> float | None:
    """Expected Jaccard of independent uniform random masks with k_a, k_b alive of n per layer
    (arrays over layers), as the ratio of summed expected intersections and unions."""
    k_a, k_b, n = (np.asarray(x, np.float64) for x in (k_a, k_b, n))
    inter = np.divide(k_a * k_b, n, out=np.zeros_like(n), where=n > 0)
    union = float((k_a + k_b - inter).sum())
    return float(inter.sum()) / union if union > 0 else None


def mask_overlap(a, b, per_layer: bool = False) -> pl.DataFrame:
    a, b = open_run(a), open_run(b)
    levels = common_levels(a, b)
    names = list(a.prunable)
    numel = np.array([a.numel(n) for n in names], np.int64)
    counts = walk_pairs(a, b, levels, 4, _overlap)
    rows = []
    for j, level in enumerate(levels):
        for layer, sel in layer_groups(names, per_layer):
            inter, union, k_a, k_b = counts[j, sel].T
            i, u = int(inter.sum()), int(union.sum())
            rows.append(
                {
                    "run_a": a.label,
                    "run_b": b.label,
                    "level": level,
                    "layer": layer,
                    "intersection": i,
                    "union": u,
                    "jaccard": i / u if u else None,
                    "jaccard_chance": chance_jaccard(k_a, k_b, numel[sel]),
                }
            )
    return pl.DataFrame(rows, schema=SCHEMA)
