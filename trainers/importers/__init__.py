"""Convert other tools' pruning checkpoints into signscope runs (SPEC section 2).

Each kind has a module with a ``plan(src, **options)`` function that finds the levels and
reference points without writing anything; :func:`import_run` checks the options, then
streams the plan into the run folder with :func:`trainers.importers.common.write_run`.
Checkpoints are only ever read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import polars as pl

from signscope.errors import RunFormatError, UsageError
from trainers.importers import openlth, paper_code, torch_prune
from trainers.importers.common import ImportPlan, reference_from_file, write_run

IMPORTERS: dict[str, Callable[..., ImportPlan]] = {
    "torch-prune": torch_prune.plan,
    "openlth": openlth.plan,
    "paper-code": paper_code.plan,
}


def kind_options(kind: str) -> set[str]:
    """The keyword options one kind's ``plan`` accepts (``replicate``, ``name``, ...)."""
    params = list(inspect.signature(IMPORTERS[kind]).parameters)
    return set(params[1:])


def import_run(
    kind: str,
    src: Path,
    out: Path,
    *,
    force: bool = False,
    method: str | None = None,
    seed: int | None = None,
    init: Path | None = None,
    **options,
) -> dict[str, pl.DataFrame]:
    """Import ``src`` (a checkpoint folder of ``kind``) as the run ``out``.

    Options left at ``None`` are not passed on; one that the kind does not take is a usage
    error naming the kinds that do. Returns the ``levels`` table of what was written.
    """
    if kind not in IMPORTERS:
        raise UsageError(f"unknown kind {kind!r}; choose one of {', '.join(IMPORTERS)}")
    given = {k: v for k, v in options.items() if v is not None}
    for opt in given:
        if opt not in kind_options(kind):
            takers = [k for k in IMPORTERS if opt in kind_options(k)]
            raise UsageError(f"--{opt} applies to {' and '.join(takers) or 'no kind'}, not {kind}")
    if not src.exists():
        raise RunFormatError(f"{src}: no such folder")
    if not src.is_dir():
        raise RunFormatError(f"{src}: not a folder")
    plan = IMPORTERS[kind](src, **given)
    if init is not None:
        plan.init = reference_from_file(init, plan)
    rows, notes = write_run(plan, out, force=force, method=method, seed=seed)
    schema = {
        "level": pl.Int64,
        "file": pl.Utf8,
        "source": pl.Utf8,
        "source_level": pl.Int64,
        "density": pl.Float64,
        "alive": pl.Int64,
        "test_acc": pl.Float64,
    }
    tables = {"levels": pl.DataFrame(rows, schema=schema)}
    if notes:
        tables["notes"] = pl.DataFrame({"note": notes}, schema={"note": pl.Utf8})
    return tables
