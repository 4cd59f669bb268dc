"""Sign flips between levels and against the reference (SPEC section 3; paper Fig 5, 13).

For every chunk of every prunable tensor the levels are walked in order while only the
chunk's state is kept, as packed bit planes: the signs at the reference and at the previous
level, and one plane per level of the weights that flipped into it. Nothing larger than a
chunk is ever held, so a 20-level ResNet50 run streams through a few tens of megabytes.

Definitions: "i flips between A and B" means alive in both and s_A(i)·s_B(i) < 0.
``flips_prev`` at L >= 1 counts flips between L-1 and L; ``flips_init`` at L counts weights
alive at L that flip between the reference and L. Over the weights alive at the last level
(or at ``at_level``), the sign trajectory (s_ref, s_0, ..., s_K) gives ``flip_count`` (flips
between consecutive entries, Fig 5 bottom) and ``last_flip`` (the largest L with a flip into
s_L, -1 if none; Fig 5 top, "the pruning iteration at which the signs do not change anymore").
A pruned weight is exactly zero (SPEC section 2), so it has sign 0 and never flips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from signscope.metrics.compare import layer_groups
from signscope.metrics.stream import (
    Packed,
    Piece,
    load,
    pieces,
    popcount,
    popcount_rows,
    run_pieces,
    scratch_planes,
)
from signscope.tensordata import Handles


@dataclass
class _ChunkResult:
    alive: np.ndarray  # per level
    flips_prev: np.ndarray
    flips_init: np.ndarray
    last_hist: np.ndarray  # index 0 = never flipped, L+1 = last flip at level L
    count_hist: np.ndarray


def _flips_into(out: np.ndarray, a: Packed, b: Packed) -> None:
    """Packed plane of the weights with a sign in both and different signs."""
    np.bitwise_xor(a.neg, b.neg, out=out)
    out &= a.signed
    out &= b.signed


def _last_flip_hist(flips: np.ndarray, final: np.ndarray) -> np.ndarray:
    """Histogram of last_flip over the ``final`` weights: index 0 = never, L+1 = level L.

    ``flips[L]`` is the packed plane of flips into level L. Walking the levels downwards,
    a weight's first hit is its last flip.
    """
    hits = scratch_planes("hits", *flips.shape)
    remaining = final.copy()
    for level in range(len(flips) - 1, -1, -1):
        np.bitwise_and(flips[level], remaining, out=hits[level])
        remaining ^= hits[level]
    hist = np.empty(len(flips) + 1, np.int64)
    hist[1:] = popcount_rows(hits)
    hist[0] = popcount(remaining)
    return hist


def _flip_count_hist(flips: np.ndarray, final: np.ndarray) -> np.ndarray:
    """Histogram of flip_count over the ``final`` weights.

    Every weight's count is kept bit-sliced: plane b holds bit b of all counts, and adding a
    level's flip plane is a ripple-carry add done 8 weights per byte.
    """
    width = len(flips).bit_length()
    bits = scratch_planes("count_bits", width, flips.shape[1])
    bits.fill(0)
    carry, nxt = np.empty_like(final), np.empty_like(final)
    for level, plane_in in enumerate(flips):
        np.copyto(carry, plane_in)
        # After level L a count is at most L+1, so higher planes cannot receive a carry.
        for plane in bits[: (level + 1).bit_length()]:
            np.bitwise_and(plane, carry, out=nxt)
            plane ^= carry
            carry, nxt = nxt, carry
    inverted = np.invert(bits, out=scratch_planes("count_inverted", *bits.shape))
    sel = scratch_planes("sel", len(flips) + 1, flips.shape[1])
    for value, row in enumerate(sel):
        np.copyto(row, final)
        for b in range(width):
            row &= bits[b] if value >> b & 1 else inverted[b]
    return popcount_rows(sel)


def _walk_chunk(
    handles: Handles, ckpts, ref, name: str, mask: str | None, piece: Piece
) -> _ChunkResult:
    """Walk one chunk through the reference and every level.

    Per level this keeps three packed planes: alive, flips from the reference, and flips
    into the level (from the previous level, or from the reference at level 0, so these
    rows are the sign trajectory). Counts and histograms come from them at the end, in a
    few calls over all levels at once.
    """
    n_levels, width = len(ckpts), (piece.count + 7) // 8
    ref_planes = load(handles, ref, name, None, piece.start, piece.count)
    alive = scratch_planes("alive", n_levels, width)
    from_ref = scratch_planes("from_ref", n_levels, width)
    into = scratch_planes("into", n_levels, width)
    prev = ref_planes
    for level, ckpt in enumerate(ckpts):
        cur = load(handles, ckpt, name, mask, piece.start, piece.count)
        alive[level] = cur.alive
        _flips_into(from_ref[level], cur, ref_planes)
        _flips_into(into[level], cur, prev)
        prev = cur
    flips_prev = popcount_rows(into)
    flips_prev[0] = 0  # `into[0]` is the flip from the reference, not from a previous level
    final = alive[-1]
    return _ChunkResult(
        popcount_rows(alive),
        flips_prev,
        popcount_rows(from_ref),
        _last_flip_hist(into, final),
        _flip_count_hist(into, final),
    )


def flip_tables(
    run,
    at_level: int | None = None,
    reference="init",
    per_layer: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, pl.DataFrame]:
    """The ``levels``, ``last_flip`` and ``flip_count`` tables of SPEC section 4 for ``run``.

    ``at_level`` K cuts the run at level K (levels 0..K, trajectories over the weights alive
    at K). With ``per_layer`` every table gets a ``layer`` column: one row group per prunable
    tensor plus the global rows under layer ``"*"``.

    ``reference`` is ``init``, ``rewind`` or a checkpoint file or folder outside the run. A
    trajectory starts at the reference, so with an outside reference every table covers the
    prunable tensors it holds with the run's shape (alive and density included), and a fourth
    table, ``reference``, says how many were compared and which were skipped.
    """
    levels = run.levels_upto(at_level)
    ckpts = [run.checkpoint(lvl) for lvl in levels]
    match = run.match_reference(reference)
    ref = match.checkpoint
    names = list(match.compared)
    n_levels = len(levels)
    shape = (len(names), n_levels)
    alive, flips_prev, flips_init = (
        np.zeros(shape, np.int64),
        np.zeros(shape, np.int64),
        np.zeros(shape, np.int64),
    )
    last_hist = np.zeros((len(names), n_levels + 1), np.int64)
    count_hist = np.zeros((len(names), n_levels + 1), np.int64)
    numels = [run.numel(n) for n in names]
    with Handles() as handles:

        def work(piece: Piece) -> _ChunkResult:
            name = names[piece.layer]
            return _walk_chunk(handles, ckpts, ref, name, run.prunable[name], piece)

        for piece, res in run_pieces(pieces(numels), work, progress):
            i = piece.layer
            alive[i] += res.alive
            flips_prev[i] += res.flips_prev
            flips_init[i] += res.flips_init
            last_hist[i] += res.last_hist
            count_hist[i] += res.count_hist
    tables = _frames(
        run.label,
        levels,
        names,
        numels,
        alive,
        flips_prev,
        flips_init,
        last_hist,
        count_hist,
        per_layer,
    )
    if match.external:
        tables["reference"] = reference_table(run.label, match)
    return tables


def reference_table(label: str, match) -> pl.DataFrame:
    """run, reference, compared, skipped, skipped_tensors ("name: reason; ...")."""
    return pl.DataFrame(
        [
            {
                "run": label,
                "reference": match.label,
                "compared": len(match.compared),
                "skipped": len(match.skipped),
                "skipped_tensors": "; ".join(f"{n}: {why}" for n, why in match.skipped.items()),
            }
        ],
        schema={
            "run": pl.String,
            "reference": pl.String,
            "compared": pl.Int64,
            "skipped": pl.Int64,
            "skipped_tensors": pl.String,
        },
    )


def _frames(
    label, levels, names, numels, alive, flips_prev, flips_init, last_hist, count_hist, per_layer
) -> dict[str, pl.DataFrame]:
    level_rows, last_rows, count_rows = [], [], []
    numels = np.asarray(numels, np.int64)
    for layer, sel in layer_groups(names, per_layer):
        prunable = int(numels[sel].sum())
        a, fp, fi = alive[sel].sum(0), flips_prev[sel].sum(0), flips_init[sel].sum(0)
        lh, ch = last_hist[sel].sum(0), count_hist[sel].sum(0)
        for j, level in enumerate(levels):
            level_rows.append(
                {
                    "run": label,
                    "layer": layer,
                    "level": level,
                    "density": a[j] / prunable if prunable else None,
                    "alive": int(a[j]),
                    "flips_prev": int(fp[j]) if j else None,
                    "flips_init": int(fi[j]),
                }
            )
        # Histogram index k holds last_flip = k - 1 (-1: never flipped).
        last_rows += [
            {"run": label, "layer": layer, "last_flip": int(k) - 1, "count": int(c)}
            for k, c in enumerate(lh)
            if c
        ]
        count_rows += [
            {"run": label, "layer": layer, "flip_count": int(k), "count": int(c)}
            for k, c in enumerate(ch)
            if c
        ]
    schema_levels = {
        "run": pl.String,
        "layer": pl.String,
        "level": pl.Int64,
        "density": pl.Float64,
        "alive": pl.Int64,
        "flips_prev": pl.Int64,
        "flips_init": pl.Int64,
    }
    schema_last = {"run": pl.String, "layer": pl.String, "last_flip": pl.Int64, "count": pl.Int64}
    schema_count = {"run": pl.String, "layer": pl.String, "flip_count": pl.Int64, "count": pl.Int64}
    tables = {
        "levels": pl.DataFrame(level_rows, schema=schema_levels),
        "last_flip": pl.DataFrame(last_rows, schema=schema_last),
        "flip_count": pl.DataFrame(count_rows, schema=schema_count),
    }
    if not per_layer:
        tables = {k: v.drop("layer") for k, v in tables.items()}
    return tables
