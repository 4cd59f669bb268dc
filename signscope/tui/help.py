"""The ``?`` screen: every key of the app, and what the tabs show."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("↑ ↓ ← →, enter", "move in the tree; a run shows its last level, a level node that level"),
    ("1 … 5", "Overview, Flips, Layers, BatchNorm, Compare"),
    ("c", "mark the selected run for comparison (A, then B; again to unmark)"),
    ("/", "filter the layers by name (esc returns to the tree)"),
    ("f", "count sign flips from init, the rewind point or tui --reference PATH (SPEC 3)"),
    ("e", "export the current tab's figure through signscope's figure layer"),
    ("r", "reload: find runs again and drop cached results"),
    ("tab", "move focus between the tree, the tabs and the tables"),
    ("?", "this help (esc closes it)"),
    ("q", "quit"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        width = max(len(key) for key, _ in KEYS) + 2
        lines = "\n".join(f"[b cyan]{escape(key):<{width}}[/] {escape(what)}" for key, what in KEYS)
        with Vertical(id="help"):
            yield Static("[b]signscope tui[/b] — keys", id="help-title")
            yield Static(lines, id="help-keys")
            yield Static(
                "Numbers come from the same functions as the CLI "
                "(signscope flips, masks, signs, bn, acc); each tab is computed once per run, "
                "level and compared run, and kept while those files are unchanged. Runs in "
                "training are followed without a key: new runs, levels and epochs show within "
                "seconds; [b]r[/b] starts over.",
                id="help-note",
            )
