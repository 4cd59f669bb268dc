"""What a run prints while it trains, all on stderr.

In a terminal: a rich live line with level, epoch, loss, accuracy, learning rate and the ETA
of the whole run, and one summary line per finished level. ``--quiet`` prints only the summary
lines. Without a terminal (logs, CI) the live line becomes one plain line per epoch. Every
reporter prints, once at the start, the ``signscope tui OUT`` command that watches the run.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text


def level_line(s: dict[str, Any]) -> str:
    acc = "—" if s.get("test_acc") is None else f"{s['test_acc']:.4f}"
    return (
        f"level {s['level']:>2}  density {s['density']:.4f}  alive {s['alive']}  "
        f"test_acc {acc}  train_loss {s['train_loss']:.4f}  {s['seconds']:.1f}s"
    )


def epoch_text(r: dict[str, Any], levels: int, epochs: int) -> str:
    test = "" if r.get("test_acc") is None else f"  test {r['test_acc']:.2%}"
    return (
        f"level {r['level']}/{levels - 1}  epoch {r['epoch']}/{epochs}  "
        f"loss {r['train_loss']:.4f}  "
        f"acc {r['train_acc']:.2%}{test}  lr {r['lr']:.4g}"
    )


class Reporter:
    """Quiet reporter: level summaries only. The others add to it."""

    def __init__(self, console: Console | None = None):
        self.console = console or _stderr()

    def start(self, levels: int, epochs: int, total_steps: int, done_steps: int) -> None:
        self.levels, self.epochs = levels, epochs

    def watch_hint(self, out: Path) -> None:
        """Once, when the run folder holds its run.json: the command that follows the run."""
        self.note(f"watch it with: signscope tui {shlex.quote(str(out))}")

    def level_start(self, level: int) -> None:
        pass

    def step(self, n: int = 1) -> None:
        pass

    def epoch(self, record: dict[str, Any]) -> None:
        pass

    def level_done(self, summary: dict[str, Any]) -> None:
        self.console.print(level_line(summary), markup=False, highlight=False)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        pass


class PlainReporter(Reporter):
    """One line per epoch, for logs."""

    def epoch(self, record: dict[str, Any]) -> None:
        self.console.print(
            epoch_text(record, self.levels, self.epochs), markup=False, highlight=False
        )


class LiveReporter(Reporter):
    """The rich live display: where the run is (bar and ETA over every remaining step of the
    run) on one line, the last epoch's numbers on the next, so narrow terminals cut neither."""

    def start(self, levels: int, epochs: int, total_steps: int, done_steps: int) -> None:
        super().start(levels, epochs, total_steps, done_steps)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.percentage:>3.0f}%  ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("", total=total_steps, completed=done_steps)
        self.stats = Text("", no_wrap=True, overflow="ellipsis")
        self.live = Live(
            Group(self.progress, self.stats),
            console=self.console,
            transient=True,
            refresh_per_second=4,
        )
        self.live.start()

    def _where(self, level: int, epoch: int) -> str:
        return f"level {level}/{self.levels - 1}  epoch {epoch}/{self.epochs}"

    def level_start(self, level: int) -> None:
        self.progress.update(self.task, description=self._where(level, 1))

    def step(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)

    def epoch(self, record: dict[str, Any]) -> None:
        nxt = min(record["epoch"] + 1, self.epochs)
        self.progress.update(self.task, description=self._where(record["level"], nxt))
        test = "" if record.get("test_acc") is None else f"  test {record['test_acc']:.2%}"
        self.stats.plain = (
            f"  last epoch: loss {record['train_loss']:.4f}  acc {record['train_acc']:.2%}"
            f"{test}  lr {record['lr']:.4g}"
        )

    def level_done(self, summary: dict[str, Any]) -> None:
        self.live.console.print(level_line(summary), markup=False, highlight=False)

    def close(self) -> None:
        if hasattr(self, "live"):
            self.live.stop()


def _stderr() -> Console:
    # soft_wrap: a summary line stays one line in logs instead of being cut at 80 columns.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def make_reporter(quiet: bool = False, console: Console | None = None) -> Reporter:
    console = console or _stderr()
    if quiet:
        return Reporter(console)
    return LiveReporter(console) if console.is_terminal else PlainReporter(console)
