"""What the user has selected: a run, maybe one of its levels, and up to two runs to compare.

Every tab derives what it shows from one :class:`Selection`, so a tab's cache key is a pure
function of it and the tabs never talk to each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from signscope.discover import FoundRun

MAX_MARKS = 2


@dataclass(frozen=True)
class Selection:
    run: FoundRun | None = None
    level: int | None = None  # a level node of the tree; None when the run node itself is selected
    marked: tuple[FoundRun, ...] = ()
    runs: tuple[FoundRun, ...] = ()  # everything discovered (the Overview groups replicates)
    reference: str = "init"  # signs that flips_init and the trajectories start from (SPEC 3)

    @property
    def effective_level(self) -> int | None:
        """The selected level, or the run's last level when the run node is selected."""
        if self.level is not None:
            return self.level
        if self.run is not None and self.run.levels:
            return self.run.levels[-1].level
        return None

    @property
    def pair(self) -> tuple[FoundRun, FoundRun] | None:
        """The two runs marked with ``c``, in marking order (A, B), once both are marked."""
        if len(self.marked) == MAX_MARKS:
            return self.marked[0], self.marked[1]
        return None

    @property
    def partner(self) -> FoundRun | None:
        """The run whose signs the Layers tab compares the selected run with.

        The other marked run when the selected run is marked; otherwise the first marked run.
        """
        others = [r for r in self.marked if self.run is None or r.path != self.run.path]
        return others[0] if others else None


def toggle_mark(marked: tuple[FoundRun, ...], run: FoundRun) -> tuple[FoundRun, ...]:
    """Mark ``run`` (keeping the last two marks) or unmark it when it is already marked."""
    if any(r.path == run.path for r in marked):
        return tuple(r for r in marked if r.path != run.path)
    return (*marked, run)[-MAX_MARKS:]
