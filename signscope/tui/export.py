"""The ``e`` key: write the current tab's figure through the figure layer (signscope.figures).

The TUI does not draw publication figures itself: it names the figures that match the tab
and hands its (already opened) runs to ``signscope.figures.build`` and ``write_figures``,
exactly what ``signscope export`` does, so a figure exported here is the same file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from signscope.discover import FoundRun
from signscope.errors import SignscopeError
from signscope.figures import FigureFormat
from signscope.tui.store import Store

FORMATS = tuple(FigureFormat)


def folder_name(*labels: str) -> str:
    """A file-system-safe folder name for these runs' figures (``runs/lrr`` -> ``runs_lrr``)."""
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "run" for label in labels]
    return "-vs-".join(parts)


@dataclass(frozen=True)
class FigureRequest:
    """Which figures of which runs a tab exports, and into which subfolder."""

    title: str
    figures: tuple[str, ...]
    runs: tuple[FoundRun, ...]
    pair: tuple[str, str] | None = None
    level: int | None = None
    reference: str = "init"  # where the flip figures count from, as the Flips tab does

    @property
    def folder(self) -> str:
        return folder_name(*(self.pair or (self.runs[0].label,)))

    def export(self, store: Store, out_dir: Path, fmt: str = "png") -> tuple[list[Path], list[str]]:
        """Write the figures; return the files and, for figures not drawn, why not.

        Runs in a worker thread: altair and vl-convert load on the first export only.
        """
        from signscope.figures.build import FigureInputs, build
        from signscope.figures.export import write_figures

        runs = [store.run(found) for found in self.runs]
        inputs = FigureInputs(
            runs,
            pair=list(self.pair) if self.pair else None,
            level=self.level,
            reference=self.reference,
        )
        figures = build(inputs, self.figures)
        skipped = [f"{f.name}: {f.reason}" for f in figures if f.chart is None]
        written = write_figures(figures, out_dir / self.folder, fmt)
        if not written:
            raise SignscopeError(f"nothing exported for {self.title}: " + "; ".join(skipped))
        return written, skipped
