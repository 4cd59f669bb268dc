"""Sign agreement of two runs per level (SPEC section 3; paper Fig 7c,d, 12).

Among the weights alive in both runs at a level, ``agree`` counts those whose signs are
equal (sign ∈ {−1, 0, +1}, so an alive weight that is exactly zero agrees only with zero),
and ``agreement`` = agree / both_alive (null when no weight is alive in both).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from signscope.metrics.compare import common_levels, layer_groups, walk_pairs
from signscope.metrics.stream import load, popcount
from signscope.run import open_run

SCHEMA = {
    "run_a": pl.String,
    "run_b": pl.String,
    "level": pl.Int64,
    "layer": pl.String,
    "both_alive": pl.Int64,
    "agree": pl.Int64,
    "agreement": pl.Float64,
}


def _agreement(handles, ca, cb, name, mask_a, mask_b, piece) -> np.ndarray:
    pa = load(handles, ca, name, mask_a, piece.start, piece.count)
    pb = load(handles, cb, name, mask_b, piece.start, piece.count)
    both = pa.alive & pb.alive
    # Equal signs: both zero, or both nonzero with the same sign bit.
    differ = (pa.signed ^ pb.signed) | (pa.signed & (pa.neg ^ pb.neg))
    return np.array([popcount(both), popcount(both & ~differ)])


def sign_agreement(a, b, per_layer: bool = False) -> pl.DataFrame:
    a, b = open_run(a), open_run(b)
    levels = common_levels(a, b)
    names = list(a.prunable)
    counts = walk_pairs(a, b, levels, 2, _agreement)
    rows = []
    for j, level in enumerate(levels):
        for layer, sel in layer_groups(names, per_layer):
            both, agree = (int(x) for x in counts[j, sel].sum(0))
            rows.append(
                {
                    "run_a": a.label,
                    "run_b": b.label,
                    "level": level,
                    "layer": layer,
                    "both_alive": both,
                    "agree": agree,
                    "agreement": agree / both if both else None,
                }
            )
    return pl.DataFrame(rows, schema=SCHEMA)
