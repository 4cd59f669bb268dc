"""The tree on the left: one node per run, one child per level, broken runs flagged in red.

Runs being trained carry their level, epoch and the time since their last epoch (or
"stalled"), and a last child for the level in training. After a poll the tree is updated in
place, not rebuilt, so the cursor and what the user expanded stay as they were.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode, UnknownNodeID

from signscope.discover import FoundRun, LevelInfo
from signscope.display import printable, sparsity_text
from signscope.training import duration_text

# Expand every run while the whole tree stays about one screen high; beyond that only the first.
_EXPAND_ALL_UP_TO = 40
MARK_BADGES = ("A", "B")


def short_names(labels: Sequence[str], roots: Sequence[str]) -> dict[str, str]:
    """Tree names: each label below the path it was found under (``runs/lrr`` -> ``lrr``
    for ``signscope tui runs``), or the whole label where that would be ambiguous."""
    names = {}
    for label in labels:
        name = label
        for root in roots:
            prefix = root.rstrip("/") + "/"
            if root not in (".", "") and label.startswith(prefix) and len(label) > len(prefix):
                name = label[len(prefix) :]
                break
        names[label] = name
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {label: name if counts[name] == 1 else label for label, name in names.items()}


@dataclass(frozen=True)
class NodeRef:
    """What a tree node stands for: a run (``level`` None) or one of its levels."""

    label: str
    level: int | None = None


class RunTree(Tree[NodeRef]):
    """Runs found by discovery; ``c`` marks are shown as A/B badges."""

    def __init__(self, **kwargs) -> None:
        super().__init__("runs", **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self._runs: dict[str, FoundRun] = {}
        self._errors: dict[str, str] = {}
        self._marks: tuple[str, ...] = ()
        self._run_nodes: dict[str, TreeNode[NodeRef]] = {}
        self._training_nodes: dict[str, TreeNode[NodeRef]] = {}  # the level being trained
        self._names: dict[str, str] = {}

    def show_runs(self, runs: Sequence[FoundRun], roots: Sequence[str] = ()) -> None:
        """Rebuild the tree for ``runs`` (after discovery or a reload) found below ``roots``."""
        self.clear()
        self._runs = {r.label: r for r in runs}
        self._names = short_names([r.label for r in runs], roots)
        self._errors = {r.label: r.error for r in runs if r.error}
        self._run_nodes = {}
        self._training_nodes = {}
        expand_all = self._small(runs)
        for i, run in enumerate(runs):
            node = self.root.add(
                self._run_label(run), data=NodeRef(run.label), expand=expand_all or i == 0
            )
            self._run_nodes[run.label] = node
            self._fill(node, run)

    @staticmethod
    def _small(runs: Sequence[FoundRun]) -> bool:
        return sum(len(r.levels) + 1 for r in runs) <= _EXPAND_ALL_UP_TO

    def update_runs(self, runs: Sequence[FoundRun], roots: Sequence[str] = ()) -> None:
        """Bring the tree in line with a new discovery without rebuilding it: new runs are
        inserted in discovery order, levels appended to their run, changed runs refilled."""
        cursor = self.cursor_node.data if self.cursor_node is not None else None
        new = {r.label: r for r in runs}
        for label in [label for label in self._run_nodes if label not in new]:
            self._run_nodes.pop(label).remove()
            self._training_nodes.pop(label, None)
            self._runs.pop(label)
            self._errors.pop(label, None)
        names = short_names([r.label for r in runs], roots)
        renamed = names != self._names
        self._names = names
        expand = self._small(runs)
        previous: TreeNode[NodeRef] | None = None
        for run in runs:
            node = self._run_nodes.get(run.label)
            old = self._runs.get(run.label)
            self._runs[run.label] = run
            if node is None:
                if run.error:
                    self._errors[run.label] = run.error
                label = self._run_label(run)
                where = {"after": previous} if previous is not None else {"before": 0}
                node = self.root.add(label, data=NodeRef(run.label), expand=expand, **where)
                self._run_nodes[run.label] = node
                self._fill(node, run)
            elif run is not old:
                self._update(node, old, run)
            elif renamed:
                node.set_label(self._run_label(run))
            previous = node
        if cursor is not None and not self._attached(self.cursor_node):
            self.select_ref(cursor)  # its node was replaced: find the new one

    def _attached(self, node: TreeNode[NodeRef] | None) -> bool:
        try:
            return node is not None and self.get_node_by_id(node.id) is node
        except UnknownNodeID:
            return False

    def _update(self, node: TreeNode[NodeRef], old: FoundRun, run: FoundRun) -> None:
        error = run.error or (self._errors.get(run.label) if old.levels == run.levels else None)
        appended = (
            error is None
            and self._errors.get(run.label) is None
            and run.levels[: len(old.levels)] == old.levels
        )
        if error:
            self._errors[run.label] = error
        else:
            self._errors.pop(run.label, None)
        node.set_label(self._run_label(run))
        if not appended:
            self._fill(node, run)
            return
        training = self._training_nodes.pop(run.label, None)
        if training is not None:
            training.remove()
        if not old.levels and run.levels:
            node.remove_children()  # the "no levels yet" line
        for info in run.levels[len(old.levels) :]:
            node.add_leaf(self._level_label(run, info), data=NodeRef(run.label, info.level))
        self._add_training(node, run)

    def _fill(self, node: TreeNode[NodeRef], run: FoundRun) -> None:
        node.remove_children()
        self._training_nodes.pop(run.label, None)
        error = self._errors.get(run.label)
        if error:
            node.add_leaf(Text(printable(error), style="red"), data=NodeRef(run.label))
            return
        if not run.levels and not (run.training and run.training.active):
            node.add_leaf(Text("no levels yet", style="dim"), data=NodeRef(run.label))
        for info in run.levels:
            node.add_leaf(self._level_label(run, info), data=NodeRef(run.label, info.level))
        self._add_training(node, run)

    def _add_training(self, node: TreeNode[NodeRef], run: FoundRun) -> None:
        if run.training is not None and run.training.active:
            label = self._training_label(run, time.time())
            self._training_nodes[run.label] = node.add_leaf(label, data=NodeRef(run.label))

    def tick(self, now: float) -> None:
        """Refresh the time since the last epoch, and stalled marks, of runs in training."""
        for label, node in self._training_nodes.items():
            run = self._runs[label]
            self._run_nodes[label].set_label(self._run_label(run, now))
            node.set_label(self._training_label(run, now))

    @staticmethod
    def _training_label(run: FoundRun, now: float) -> Text:
        training = run.training
        level, epoch = training.position()
        of = f"/{training.epochs_per_level}" if training.epochs_per_level else ""
        text = Text(f"level {level:>2}  ", style="dim")
        if training.state(now) == "stalled":
            text.append(f"stalled at epoch {epoch}{of}", style="yellow")
        else:
            text.append(f"training: epoch {epoch}{of}", style="green")
        return text

    def _run_label(self, run: FoundRun, now: float | None = None) -> Text:
        text = Text()
        if run.label in self._marks:
            badge = MARK_BADGES[self._marks.index(run.label)]
            text.append(f"[{badge}] ", style="bold reverse")
        name = printable(self._names.get(run.label, run.label))
        if run.label in self._errors:
            text.append("✗ ", style="bold red")
            text.append(name, style="red")
            return text
        text.append(name, style="bold")
        detail = run.method or run.kind
        text.append(f"  {detail}", style="dim")
        training = run.training
        if training is not None and training.active:
            now = time.time() if now is None else now
            level, epoch = training.position()
            age = training.since_update(now)
            since = "" if age is None else f" {duration_text(age, short=True)}"
            if training.state(now) == "stalled":
                text.append(f"  ⚠ stalled{since}", style="bold yellow")
            else:
                text.append(f"  ● L{level} e{epoch}{since}", style="green")
        return text

    @staticmethod
    def _level_label(run: FoundRun, info: LevelInfo) -> Text:
        text = Text(f"level {info.level:>2}")
        if info.density is not None:
            text.append(f"  {sparsity_text(info.density):>6}", style="cyan")
        if info.test_acc is not None:
            text.append(f"  acc {info.test_acc:.3f}", style="green")
        if run.kind != "signscope":
            text.append(f"  {info.file}", style="dim")
        return text

    def set_marks(self, labels: tuple[str, ...]) -> None:
        """Show the A/B badges of the runs marked for comparison."""
        self._marks = labels
        for label, node in self._run_nodes.items():
            node.set_label(self._run_label(self._runs[label]))

    def flag(self, label: str, error: str) -> None:
        """Mark a run as broken (``open_run`` refused it after discovery accepted it)."""
        if label not in self._run_nodes or self._errors.get(label) == error:
            return
        self._errors[label] = error
        node = self._run_nodes[label]
        node.set_label(self._run_label(self._runs[label]))
        self._fill(node, self._runs[label])
        node.expand()

    def select_ref(self, ref: NodeRef | None) -> bool:
        """Put the cursor on the node for ``ref`` (after a reload); False when it is gone."""
        if ref is None or ref.label not in self._run_nodes:
            return False
        node = self._run_nodes[ref.label]
        if ref.level is not None:
            node.expand()
            for child in node.children:
                if child.data == ref:
                    node = child
                    break
        self.move_cursor(node)
        return True
