"""``signscope neuron``: the single hidden neuron experiment (paper Sec. 2.3, Fig. 2a, Fig. 18)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from signscope.cli.app import app
from signscope.cli.render import FormatOption, OutOption, OutputFormat, emit
from signscope.errors import SignscopeError, UsageError

DEFAULT_D = 10


class Optimizer(StrEnum):
    lbfgs = "lbfgs"
    gd = "gd"


def parse_sweep(text: str) -> list[int]:
    """``"1,2,5,10"`` -> [1, 2, 5, 10]; every entry a positive integer, no repeats."""
    try:
        ds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(
            f"--sweep-d {text!r}: expected comma-separated input dimensions, e.g. 1,2,5,10"
        ) from None
    if not ds or any(d < 1 for d in ds):
        raise UsageError(f"--sweep-d {text!r}: every input dimension must be an integer >= 1")
    if len(set(ds)) != len(ds):
        raise UsageError(f"--sweep-d {text!r}: a dimension is listed twice")
    return ds


@app.command()
def neuron(
    d: Annotated[
        int | None,
        typer.Option(
            "--d", min=1, show_default=False, help=f"Input dimension (default {DEFAULT_D})."
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option(min=1, help="Training samples per run (full batch).")
    ] = 1000,
    noise: Annotated[float, typer.Option(min=0.0, help="Label noise variance σ².")] = 0.01,
    runs: Annotated[
        int, typer.Option(min=1, help="Runs per sign quadrant of (a(0), w_1(0)).")
    ] = 10,
    prune_levels: Annotated[
        int,
        typer.Option(
            min=1,
            help="Prune levels after the dense one; "
            "each removes the same fraction, ending at one input.",
        ),
    ] = 3,
    steps: Annotated[
        int,
        typer.Option(
            min=1,
            help="Per level: LBFGS iterations at most (it stops when converged), "
            "or gradient-descent steps.",
        ),
    ] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed; the same seed gives the same table.")] = 0,
    sweep_d: Annotated[
        str | None,
        typer.Option(
            "--sweep-d",
            metavar="D,D,...",
            help="Run each input dimension in turn, e.g. 1,2,5,10 (paper Fig. 18).",
        ),
    ] = None,
    optimizer: Annotated[
        Optimizer,
        typer.Option(
            help="lbfgs (the paper's), or gd: plain gradient descent, close to the gradient flow "
            "that the theorems assume."
        ),
    ] = Optimizer.lbfgs,
    lr: Annotated[
        float | None,
        typer.Option(show_default=False, help="Gradient-descent step size (default d/2)."),
    ] = None,
    per_run: Annotated[
        bool, typer.Option("--per-run", help="Add a table `runs` with every run's final state.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
    out: OutOption = None,
) -> None:
    """Single hidden neuron f(x) = a·relu(w·x): success of IMP and LRR per sign quadrant.

    Trains all d inputs, then prunes by |w| down to one input.
    IMP rewinds to the initial values, LRR continues from the trained ones.
    Success: relative error < 0.1 on 10,000 fresh noise-free samples after the last level.
    Paper Sec. 2.3, Fig. 2a, Fig. 18; results and caveats in docs/neuron.md. Needs PyTorch.
    """
    if sweep_d is not None and d is not None:
        raise UsageError("give either --d or --sweep-d, not both")
    if lr is not None and lr <= 0:
        raise UsageError(f"--lr {lr}: the step size must be positive")
    if lr is not None and optimizer is Optimizer.lbfgs:
        raise UsageError(
            "--lr applies to --optimizer gd only (LBFGS picks its steps by line search)"
        )
    ds = parse_sweep(sweep_d) if sweep_d is not None else [d or DEFAULT_D]
    try:
        from trainers.neuron import NeuronConfig, neuron_tables
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise SignscopeError(
            f"signscope neuron needs PyTorch ({exc}); install the train extra: "
            "pip install 'signscope[train]'"
        ) from None
    from signscope.cli.inspect_options import progress_bar

    config = NeuronConfig(
        d=ds[0],
        samples=samples,
        noise=noise,
        runs=runs,
        prune_levels=prune_levels,
        steps=steps,
        seed=seed,
        optimizer=optimizer.value,
        lr=lr,
    )
    with progress_bar("single neuron runs") as progress:
        tables = neuron_tables(config, ds, per_run=per_run, progress=progress)
    emit(tables, fmt, out, "neuron")
