"""``signscope import KIND SRC --out RUN``: convert other tools' checkpoints into a run.

Needs PyTorch (the ``train`` extra) to read ``.pt`` files; torch is imported only when the
command runs, so ``signscope --help`` and the inspection commands stay torch-free.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from signscope.cli.app import app
from signscope.cli.render import emit
from signscope.errors import SignscopeError, UsageError


class ImportKind(StrEnum):
    # Must match trainers.importers.IMPORTERS (checked by the tests).
    torch_prune = "torch-prune"
    openlth = "openlth"
    paper_code = "paper-code"


class SummaryFormat(StrEnum):
    table = "table"
    json = "json"


@app.command("import")
def import_command(
    kind: Annotated[
        ImportKind,
        typer.Argument(
            help="torch-prune: a folder of state dicts with NAME_orig/NAME_mask, one file per "
            "level. "
            "openlth: an OpenLTH lottery folder (replicate_R/level_L/main/). "
            "paper-code: the runs/ folder of the paper's code (model_NAME_L.pt, mask_NAME_L.pt).",
            show_default=False,
        ),
    ],
    src: Annotated[Path, typer.Argument(help="The folder to import.", show_default=False)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The run folder to create.", show_default=False)
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace the run files already in --out.")
    ] = False,
    method: Annotated[
        str | None,
        typer.Option(
            help="The method the source run used (imp, lrr, ...), recorded in run.json. "
            "Default: what the source says (OpenLTH: imp), else unknown."
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="The seed to record (default: the source's, e.g. the OpenLTH replicate)."
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="A checkpoint holding the weights at initialisation, for sources without them "
            "(.safetensors, or a .pt/.pth of this kind)."
        ),
    ] = None,
    replicate: Annotated[
        int | None,
        typer.Option(help="openlth: which replicate_R to import, when SRC holds several."),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(help="openlth: the experiment folder inside each level (default: main)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="paper-code: the experiment name NAME, when SRC holds several."),
    ] = None,
    settings: Annotated[
        Path | None,
        typer.Option(
            help="paper-code: the run's settings.txt, when NAME ran more than once "
            "(default: the last re-run's)."
        ),
    ] = None,
    fmt: Annotated[
        SummaryFormat,
        typer.Option("--format", "-f", help="How to print the summary of what was written."),
    ] = SummaryFormat.table,
) -> None:
    """Convert another tool's checkpoints into a signscope run (one file per level)."""
    if method is not None and (not method.strip() or any(c.isspace() for c in method)):
        raise UsageError(f"--method {method!r}: give one word, e.g. imp or lrr")
    try:
        from trainers.importers import import_run
    except ImportError as exc:
        raise SignscopeError(
            f"signscope import needs PyTorch ({exc}); "
            "install it with pip install 'signscope[train]'"
        ) from None
    tables = import_run(
        kind.value,
        src,
        out,
        force=force,
        method=method,
        seed=seed,
        init=init,
        replicate=replicate,
        experiment=experiment,
        name=name,
        settings=settings,
    )
    emit(tables, fmt.value, None, "import")
    typer.echo(f"wrote {len(tables['levels'])} levels to {out}", err=True)
