"""The Python API: open runs and get the CLI's tables as polars DataFrames.

    >>> import signscope
    >>> run = signscope.open_run("runs/lrr")
    >>> run.flips()["levels"]            # flips_prev / flips_init per level (SPEC section 3)
    >>> signscope.masks("runs/lrr", "runs/imp", per_layer=True)

Column names are exactly those of SPEC section 4 and docs/api.md. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from signscope.errors import RunFormatError, SignscopeError
from signscope.run import Run, open_run

__all__ = ["Run", "RunFormatError", "SignscopeError", "acc", "masks", "open_run", "signs"]


def masks(a: Run | str, b: Run | str, per_layer: bool = False) -> pl.DataFrame:
    """Mask overlap of runs ``a`` and ``b`` at every level both have.

    Columns: run_a, run_b, level, layer ("*" = global), intersection, union, jaccard,
    jaccard_chance. Raises RunFormatError when the runs' architectures differ.
    """
    from signscope.metrics.masks import mask_overlap

    return mask_overlap(a, b, per_layer)


def signs(a: Run | str, b: Run | str, per_layer: bool = False) -> pl.DataFrame:
    """Sign agreement among weights alive in both runs, at every level both have.

    Columns: run_a, run_b, level, layer ("*" = global), both_alive, agree, agreement.
    """
    from signscope.metrics.signs import sign_agreement

    return sign_agreement(a, b, per_layer)


def acc(runs: Iterable[Run | str]) -> dict[str, pl.DataFrame]:
    """Test accuracy vs density per method: ``accuracy`` (mean and 95% Student-t interval
    over seeds) and ``runs`` (one row per run and level)."""
    from signscope.metrics.accuracy import accuracy_tables

    return accuracy_tables(runs)
