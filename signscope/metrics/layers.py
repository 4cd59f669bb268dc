"""Alive counts, density and the per-level / per-layer overview of a run (SPEC section 3).

``alive`` at level L counts the weights whose mask is 1 (or, in a run without masks, that
are nonzero); ``density`` is alive / prunable, globally or per prunable tensor.
"""

from __future__ import annotations

import polars as pl

from signscope.display import config_items
from signscope.metrics.stream import count_alive, pieces, run_pieces
from signscope.runformat import natural_key
from signscope.tensordata import Handles


def alive_counts(run, level: int) -> dict[str, int]:
    """Prunable tensor name -> number alive at ``level``."""
    ckpt = run.checkpoint(level)
    names = list(run.prunable)
    counts = dict.fromkeys(names, 0)
    with Handles() as handles:

        def work(piece):
            name = names[piece.layer]
            return count_alive(handles, ckpt, name, run.prunable[name], piece.start, piece.count)

        for piece, n in run_pieces(pieces(run.numel(n) for n in names), work):
            counts[names[piece.layer]] += n
    return counts


def summary_table(run) -> pl.DataFrame:
    """run, level, density, alive, test_acc (null when the run does not record it)."""
    total = sum(run.numel(n) for n in run.prunable)
    rows = []
    for level in run.levels:
        alive = sum(run.alive(level).values())
        rows.append(
            {
                "run": run.label,
                "level": level,
                "density": alive / total if total else None,
                "alive": alive,
                "test_acc": run.test_acc(level),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "run": pl.String,
            "level": pl.Int64,
            "density": pl.Float64,
            "alive": pl.Int64,
            "test_acc": pl.Float64,
        },
    )


def layers_table(run, level: int) -> pl.DataFrame:
    """layer, shape, numel, dtype, prunable, alive, density: every tensor of the level file
    except the masks; alive and density are null for tensors that are not prunable."""
    ckpt = run.checkpoint(level)
    alive = run.alive(level)
    masks = {m for m in run.prunable.values() if m}
    rows = []
    # Files order tensors by element size for alignment; people read layers by name, so
    # bn1.bias sits next to bn1.weight and layer2 before layer10.
    for name, info in sorted(ckpt.tensors.items(), key=lambda item: natural_key(item[0])):
        if name in masks:
            continue
        n = alive.get(name)
        rows.append(
            {
                "layer": name,
                "shape": info.shape_text,
                "numel": info.numel,
                "dtype": info.dtype,
                "prunable": name in run.prunable,
                "alive": n,
                "density": (n / info.numel if info.numel else None) if n is not None else None,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "layer": pl.String,
            "shape": pl.String,
            "numel": pl.Int64,
            "dtype": pl.String,
            "prunable": pl.Boolean,
            "alive": pl.Int64,
            "density": pl.Float64,
        },
    )


def config_table(config: dict) -> pl.DataFrame:
    """The run's config as key/value rows; nested keys are dotted, values JSON unless strings."""
    return pl.DataFrame(
        config_items(config), schema={"key": pl.String, "value": pl.String}, orient="row"
    )
