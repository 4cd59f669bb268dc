"""The tree on the left: one node per run, one child per level, broken runs flagged in red."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from signscope.discover import FoundRun, LevelInfo
from signscope.tui.plots import sparsity_label

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
        self._names: dict[str, str] = {}

    def show_runs(self, runs: Sequence[FoundRun], roots: Sequence[str] = ()) -> None:
        """Rebuild the tree for ``runs`` (after discovery or a reload) found below ``roots``."""
        self.clear()
        self._runs = {r.label: r for r in runs}
        self._names = short_names([r.label for r in runs], roots)
        self._errors = {r.label: r.error for r in runs if r.error}
        self._run_nodes = {}
        expand_all = sum(len(r.levels) + 1 for r in runs) <= _EXPAND_ALL_UP_TO
        for i, run in enumerate(runs):
            node = self.root.add(
                self._run_label(run), data=NodeRef(run.label), expand=expand_all or i == 0
            )
            self._run_nodes[run.label] = node
            self._fill(node, run)

    def _fill(self, node: TreeNode[NodeRef], run: FoundRun) -> None:
        node.remove_children()
        error = self._errors.get(run.label)
        if error:
            node.add_leaf(Text(error, style="red"), data=NodeRef(run.label))
            return
        if not run.levels:
            node.add_leaf(Text("no levels yet", style="dim"), data=NodeRef(run.label))
        for info in run.levels:
            node.add_leaf(self._level_label(run, info), data=NodeRef(run.label, info.level))

    def _run_label(self, run: FoundRun) -> Text:
        text = Text()
        if run.label in self._marks:
            badge = MARK_BADGES[self._marks.index(run.label)]
            text.append(f"[{badge}] ", style="bold reverse")
        name = self._names.get(run.label, run.label)
        if run.label in self._errors:
            text.append("✗ ", style="bold red")
            text.append(name, style="red")
            return text
        text.append(name, style="bold")
        detail = run.method or run.kind
        text.append(f"  {detail}", style="dim")
        return text

    @staticmethod
    def _level_label(run: FoundRun, info: LevelInfo) -> Text:
        text = Text(f"level {info.level:>2}")
        if info.density is not None:
            text.append(f"  {sparsity_label(info.density):>6}", style="cyan")
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

    def error_of(self, label: str) -> str | None:
        return self._errors.get(label)

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
