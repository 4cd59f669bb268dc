"""``signscope bench``: images/s and s/epoch of the training loop against a plain PyTorch loop.

Thin: options in, trainers.bench does the timing, render.emit prints the one table. PyTorch is
imported only when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from signscope.cli.app import app
from signscope.cli.render import FormatOption, OutOption, OutputFormat, emit
from signscope.cli.train import AmpOption, CompileOption
from signscope.errors import SignscopeError


@app.command()
def bench(
    model: Annotated[
        str, typer.Option("--model", help="Architecture (as for train).")
    ] = "resnet18",
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="synthetic (random 3x32x32 images) or a data set that train reads (e.g. cifar10, "
            "from --data-root).",
        ),
    ] = "synthetic",
    data_root: Annotated[
        Path | None, typer.Option("--data-root", help="Folder holding the data set files.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Training batch size.")] = 256,
    device: Annotated[str, typer.Option("--device", help="cuda, cpu or auto.")] = "cuda",
    compile: CompileOption = False,
    amp: AmpOption = "auto",
    density: Annotated[
        float,
        typer.Option(
            "--density",
            help="Fraction of prunable weights alive (global magnitude masks on the init).",
        ),
    ] = 0.2,
    steps: Annotated[int, typer.Option("--steps", help="Timed steps per loop.")] = 50,
    warmup: Annotated[
        int, typer.Option("--warmup", help="Untimed steps first (autotuning, compile, workers).")
    ] = 10,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="DataLoader worker processes of the reference loop. Default: min(8, CPU cores).",
        ),
    ] = None,
    reference: Annotated[
        bool, typer.Option("--reference/--no-reference", help="Also time the plain reference loop.")
    ] = True,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Also profile 10 steps of the signscope loop: table 'profile', the operators "
            "that take the most device time (CPU time on a CPU).",
        ),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
    out: OutOption = None,
) -> None:
    """Measure training images/s of the signscope loop (masked sparse training at --density)
    and of a plain PyTorch loop (DataLoader + per-sample torchvision transforms, fp32, plain
    SGD) in the same process, and print both with their ratio.

    s/epoch is extrapolated from the timed steps to 50,000 images (CIFAR-10's training set).
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SignscopeError(
            "signscope bench needs PyTorch: pip install 'signscope[train]'"
        ) from None
    import polars as pl

    from trainers.bench import EPOCH_IMAGES, BenchConfig, run_bench

    cfg = BenchConfig(
        model=model,
        dataset=dataset,
        data_root=None if data_root is None else str(data_root),
        batch_size=batch_size,
        device=device,
        compile=compile,
        amp=amp,
        density=density,
        steps=steps,
        warmup=warmup,
        reference=reference,
        profile=profile,
        **({} if workers is None else {"workers": workers}),
    )
    tables = run_bench(cfg)
    emit({name: pl.DataFrame(rows) for name, rows in tables.items()}, fmt, out, stem="bench")
    rows = tables["bench"]
    note = (
        f"s_per_epoch = {EPOCH_IMAGES:,} images (CIFAR-10's training set) at the rate of "
        f"{steps} timed steps after {warmup} warm-up steps: extrapolated, not a measured epoch."
    )
    if len(rows) == 2:
        note += f" signscope loop: {rows[0]['speedup']:.2f}x the reference loop's images/s."
    print(note, file=sys.stderr)
