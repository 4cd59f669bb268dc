"""Arguments and options shared by the inspection commands, and their progress bar.

Kept apart from the command modules so that importing one command never registers another
(registration order is the order of ``signscope --help``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

RunsArgument = Annotated[
    list[str],
    typer.Argument(
        help="Run folders (signscope runs, folders of *.safetensors, folders of checkpoint "
        "folders) or single checkpoints.",
        show_default=False,
    ),
]
RunArgument = Annotated[
    str, typer.Argument(help="Run folder or single checkpoint.", show_default=False)
]
RunA = Annotated[
    str, typer.Argument(help="First run folder or single checkpoint.", show_default=False)
]
RunB = Annotated[
    str,
    typer.Argument(
        help="Second run folder or single checkpoint (same architecture).", show_default=False
    ),
]
ReferenceOption = Annotated[
    str,
    typer.Option(
        "--reference",
        metavar="init|rewind|PATH",
        help="Signs that flips count from: init, rewind (the rewind point), or a checkpoint "
        "file or folder outside the run, e.g. the base model (tensors matched by name).",
    ),
]
PerLayerOption = Annotated[
    bool,
    typer.Option(
        "--per-layer",
        help="Add a layer column: one row group per prunable tensor, "
        "plus the global rows under layer '*'.",
    ),
]
LevelOption = Annotated[
    int | None,
    typer.Option("--level", "-l", help="Level to inspect.", show_default="last level"),
]


def open_pair(path_a: str, path_b: str):
    """Open two runs to compare, with a note on stderr when their checkpoints are paired
    across different training steps."""
    from signscope.api import open_run
    from signscope.metrics.compare import common_levels, step_mismatch

    a, b = open_run(path_a), open_run(path_b)
    note = step_mismatch(a, b, common_levels(a, b))
    if note:
        print(f"note: {note}", file=sys.stderr)
    return a, b


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a ``progress(done, total)`` callback for a transient bar on stderr, or None when
    stderr is not a terminal (so JSON/CSV output, pipes and logs never see it)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}", markup=False),  # it names runs: data, not markup
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
