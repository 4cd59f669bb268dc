"""``signscope tui``: browse runs, levels, layers, flips and BatchNorm in the terminal.

Layout: the run tree on the left, one tab per view on the right. Discovery and every metric
run in thread workers, so the screen stays responsive on multi-GB runs; results are kept per
(run, level, compared run) while the files they come from are unchanged.

The app is also a monitor: every POLL_S seconds a :class:`Watcher` poll (stats,
and headers of new files only) finds new runs, levels and epochs, and a run that completed;
the tree and the selected tab follow without a key. ``r`` still starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane, Tree

from signscope.discover import Discovery, FoundRun, Watcher
from signscope.display import literal, printable
from signscope.errors import SignscopeError
from signscope.tui.batchnorm import BatchNormPane
from signscope.tui.compare import ComparePane
from signscope.tui.export import FigureRequest
from signscope.tui.flips import FlipsPane
from signscope.tui.help import HelpScreen
from signscope.tui.layers import LayersPane
from signscope.tui.overview import OverviewPane
from signscope.tui.pane import ResultPane
from signscope.tui.runtree import NodeRef, RunTree
from signscope.tui.state import Selection, toggle_mark
from signscope.tui.store import Store

TABS = (
    ("overview", "Overview", OverviewPane),
    ("flips", "Flips", FlipsPane),
    ("layers", "Layers", LayersPane),
    ("batchnorm", "BatchNorm", BatchNormPane),
    ("compare", "Compare", ComparePane),
)
# Arrow keys move through levels faster than a ResNet50 level computes; wait for the cursor
# to rest before starting work for it.
SETTLE_S = 0.12
# How long the app waits for discovery before it starts drawing (see __init__).
EARLY_DISCOVERY_S = 0.2
# How often the app looks for changes on disk; a level or epoch shows within about this long.
POLL_S = 1.0
# The most of one core that polling may take: on a folder tree so big that a poll costs more
# than this share of POLL_S, polls are spaced further apart.
POLL_SHARE = 0.05


def _in_thread(fn, *args) -> Future:
    """Run ``fn(*args)`` in a daemon thread now; the Future holds its result or error."""
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever waits on it
            future.set_exception(exc)

    threading.Thread(target=target, name="signscope-discover", daemon=True).start()
    return future


class SignscopeApp(App[None]):
    """The terminal UI over the runs found below ``paths``."""

    CSS_PATH = "app.tcss"
    TITLE = "signscope"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("r", "reload", "Reload"),
        Binding("c", "mark", "Mark for compare"),
        Binding("e", "export", "Export figure"),
        Binding("slash", "filter", "Filter layers", key_display="/"),
        Binding("f", "reference", "Flips from init/rewind"),
        Binding("question_mark", "help", "Help", key_display="?"),
        *(
            Binding(str(i), f"tab('{tab}')", label, show=False)
            for i, (tab, label, _) in enumerate(TABS, start=1)
        ),
    ]

    def __init__(
        self,
        paths: Sequence[str | os.PathLike] | None = None,
        export_dir: str | os.PathLike = "figures",
        export_format: str = "png",
        poll_s: float = POLL_S,
        reference: str | None = None,
    ) -> None:
        super().__init__()
        self.paths = tuple(str(p) for p in (paths or ["."]))
        self.poll_s = poll_s
        self.watcher = Watcher(self.paths)
        # The first screen needs the runs. Discovery (headers only) takes ~40 ms for a
        # 20-level ResNet50 run when it has the GIL to itself, but ~0.4 s when it shares it
        # with Textual's start-up. So give it a short head start here; a folder tree too big
        # for that keeps going in its thread, and the tree shows a loading indicator.
        self._early_discovery: Future | None = _in_thread(self.watcher.poll)
        with contextlib.suppress(TimeoutError):
            self._early_discovery.result(timeout=EARLY_DISCOVERY_S)
        self.export_dir = Path(export_dir)
        self.export_format = export_format
        self.exported: list[Path] = []  # every file the e key wrote, in order
        self.store = Store()
        self.runs: dict[str, FoundRun] = {}
        self._polled: dict[str, FoundRun] = {}  # the runs as the last poll found them
        self._polling = False
        self._next_poll = 0.0
        self.selection = Selection()
        self._marks: tuple[str, ...] = ()
        # What f cycles through: init, rewind, and a checkpoint outside the runs when given.
        self.references = ("init", "rewind", *([reference] if reference else []))
        self.reference = reference or "init"
        self._settle_timer = None
        self._discovery_timer = None
        self._discovering = False
        # True from a (re)discovery until its result is on screen (tests wait on it).
        self.looking = False
        self.quitting = False
        self._started = time.perf_counter()
        # Seconds from construction to "first screen" (tree and the first run's config on
        # screen) and to "overview filled" (its levels and chart computed); see timing.py.
        self.timings: dict[str, float] = {}
        # Tab bodies mounted (or being mounted), by tab id; see _ensure_pane.
        self._panes_ready: dict[str, asyncio.Event] = {}

    def notify(self, message: str, *, markup: bool = False, **kwargs) -> None:
        """Textual's notify, but plain text by default: messages name runs and paths, which
        are data and may look like markup ("imp[seed1]")."""
        super().notify(printable(message), markup=markup, **kwargs)

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="±")
        with Horizontal(id="main"):
            with Vertical(id="sidebar"):
                yield RunTree(id="tree")
            with TabbedContent(id="tabs"):
                for i, (tab, label, pane) in enumerate(TABS):
                    with TabPane(label, id=tab):
                        # Only the first tab's body is part of the first screen; the others
                        # are mounted right after it is drawn (see _mount_other_panes).
                        if i == 0:
                            yield pane(self.store, id=f"{tab}-pane")
        yield Static("", id="empty")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = printable(" ".join(self.paths))
        self._look_for_runs()
        self.set_interval(self.poll_s, self._tick, name="poll")

    def _look_for_runs(self) -> None:
        tree = self.query_one("#tree", RunTree)
        early = self._early_discovery
        if early is not None and early.done() and early.exception() is None:
            self._early_discovery = None
            self.looking = True
            self._show_discovery(early.result())
            return
        self._discovering = self.looking = True
        # An animated indicator competes with discovery for the GIL: show it only when
        # discovery is slow enough to need it (a big folder tree). The timer may fire after
        # discovery has returned but before its result is handled, hence the flag.
        self._discovery_timer = tree.set_timer(
            0.3, lambda: setattr(tree, "loading", self._discovering)
        )
        self.find_runs()

    # -- discovery --------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="discover", exit_on_error=False)
    def find_runs(self) -> Discovery:
        early, self._early_discovery = self._early_discovery, None
        if early is not None:
            return early.result()
        return self.watcher.poll()

    def _tick(self) -> None:
        if self.quitting:
            return
        with contextlib.suppress(NoMatches):  # closing, or the tab's body is being mounted
            self.query_one("#tree", RunTree).tick(time.time())
            self._active_pane().clock()
        if self._polling or self.looking or time.monotonic() < self._next_poll:
            return
        self._polling = True
        self.poll_runs(self.watcher)

    @work(thread=True, group="poll", exit_on_error=False)
    def poll_runs(self, watcher: Watcher) -> tuple[Watcher, Discovery, float]:
        """A poll, with the CPU seconds it took (its thread's, not the GIL waits)."""
        started = time.thread_time()
        found = watcher.poll()
        return watcher, found, time.thread_time() - started

    def on_worker_state_changed(self, event) -> None:
        worker = event.worker
        if worker.group == "export" and worker.is_finished and worker.result is not None:
            text, severity = worker.result
            self.notify(text, severity=severity, timeout=8)
            return
        if worker.group == "poll" and worker.is_finished:
            self._polling = False
            if worker.result is None:
                return
            watcher, found, cost = worker.result
            self._next_poll = time.monotonic() + max(0.0, cost / POLL_SHARE - self.poll_s)
            # A reload replaced the watcher meanwhile: its own discovery is on its way.
            if watcher is self.watcher and not self.looking:
                self._follow(found)
            return
        if worker.group != "discover" or not worker.is_finished:
            return
        tree = self.query_one("#tree", RunTree)
        self._discovering = False
        self._discovery_timer.stop()
        tree.loading = False
        if worker.error is not None:
            self._show_empty(f"[b]Could not look for runs:[/b] {literal(str(worker.error))}")
            self.looking = False
            return
        self._show_discovery(worker.result)

    def _follow(self, found: Discovery) -> None:
        """Take in a poll: update the tree in place and refresh the tab if anything changed."""
        runs: dict[str, FoundRun] = {}
        changed = set(self._polled) != {r.label for r in found.runs}
        for run in found.runs:
            if self._polled.get(run.label) is run:
                # Unchanged files: keep what the app knows beyond discovery (an open error).
                runs[run.label] = self.runs.get(run.label, run)
            else:
                runs[run.label] = run
                changed = True
        self._polled = {r.label: r for r in found.runs}
        if not changed:
            return
        current = self._current_ref()
        if not runs or not self.runs or current is None or current.label not in runs:
            self._show_discovery(found)  # to or from the empty state, or the selection is gone
            return
        self.runs = runs
        tree = self.query_one("#tree", RunTree)
        tree.update_runs(tuple(runs.values()), found.roots)
        marks = tuple(m for m in self._marks if m in self.runs)
        if marks != self._marks:
            self._marks = marks
            tree.set_marks(marks)
        self._select(current, quiet=True)

    def _show_discovery(self, found: Discovery) -> None:
        previous = self._current_ref()
        self._polled = {r.label: r for r in found.runs}
        self.runs = {r.label: r for r in found.runs}
        self._marks = tuple(m for m in self._marks if m in self.runs)
        tree = self.query_one("#tree", RunTree)
        tree.show_runs(found.runs, found.roots)
        tree.set_marks(self._marks)
        for problem in found.problems:
            self.notify(problem, severity="warning", timeout=8)
        if not found.runs:
            where = ", ".join(literal(p) for p in found.roots)
            self._show_empty(
                f"[b]No runs found below {where}.[/b]\n\n"
                "A run is a folder holding [b]run.json[/b] (written by [i]signscope train[/i]) "
                "or any folder of [b]*.safetensors[/b] checkpoints.\n"
                "Start the UI on such a folder: [b]signscope tui runs/[/b]   ·   "
                "[b]r[/b] looks again   ·   [b]q[/b] quits"
            )
            self._select(None)
            self.looking = False
            return
        self.set_class(False, "-empty")
        default = next((r for r in found.runs if r.ok), found.runs[0])
        target = (
            previous
            if previous is not None and previous.label in self.runs
            else NodeRef(default.label)
        )

        def place_cursor() -> None:
            tree.select_ref(target)
            tree.focus()
            self._select(target)
            self.looking = False
            self.call_after_refresh(self._first_screen_drawn)

        self.call_after_refresh(place_cursor)

    def _show_empty(self, text: str) -> None:
        self.query_one("#empty", Static).update(text)
        self.set_class(True, "-empty")

    # -- selection --------------------------------------------------------------------------
    def _current_ref(self) -> NodeRef | None:
        sel = self.selection
        return None if sel.run is None else NodeRef(sel.run.label, sel.level)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if self._settle_timer is not None:
            self._settle_timer.stop()
        ref = event.node.data
        # The tree owns the timer, so it dies with the tree when the app closes.
        self._settle_timer = event.control.set_timer(SETTLE_S, lambda: self._select(ref))

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        if self._settle_timer is not None:
            self._settle_timer.stop()
        self._select(event.node.data)

    def _select(self, ref: NodeRef | None, quiet: bool = False) -> None:
        run = self.runs.get(ref.label) if ref is not None else None
        self.selection = Selection(
            run=run,
            level=ref.level if ref is not None and run is not None else None,
            marked=tuple(self.runs[m] for m in self._marks),
            runs=tuple(self.runs.values()),
            reference=self.reference,
        )
        self._refresh_active(quiet)

    def _active_pane(self) -> ResultPane:
        """The body of the tab on screen; NoMatches while the app closes, or while that body
        is still being mounted (the tab's activation shows the selection once it is)."""
        tab = self.query_one("#tabs", TabbedContent).active
        ready = self._panes_ready.get(tab)
        if tab != TABS[0][0] and (ready is None or not ready.is_set()):
            raise NoMatches(f"#{tab}-pane is being mounted")
        return self.query_one(f"#{tab}-pane", ResultPane)

    def _refresh_active(self, quiet: bool = False) -> None:
        try:
            pane = self._active_pane()
        except NoMatches:  # closing, or the pane is being mounted
            return
        pane.update_selection(self.selection, quiet)

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        await self._ensure_pane(event.pane.id)
        self._refresh_active()

    async def _ensure_pane(self, tab: str | None) -> None:
        """Mount the body of ``tab`` if it is not mounted yet; wait for it if another caller
        (the background mount, a key) is mounting it right now."""
        if tab is None:
            return
        ready = self._panes_ready.get(tab)
        if ready is None:
            ready = self._panes_ready[tab] = asyncio.Event()
            try:
                if not self.query(f"#{tab}-pane"):
                    cls = next(pane for name, _, pane in TABS if name == tab)
                    await self.query_one(f"#{tab}", TabPane).mount(
                        cls(self.store, id=f"{tab}-pane")
                    )
            finally:
                ready.set()
        await ready.wait()

    async def _mount_other_panes(self) -> None:
        try:
            for tab, _, _ in TABS[1:]:
                await self._ensure_pane(tab)
        except NoMatches:  # the app closed first
            return

    def _first_screen_drawn(self) -> None:
        self._stamp("first screen")
        if not self._panes_ready:
            self.run_worker(self._mount_other_panes(), group="mount")

    def exit(self, *args, **kwargs) -> None:
        # Tells cancelled workers to stop now rather than finish what is on screen (pane.py).
        self.quitting = True
        super().exit(*args, **kwargs)

    def _stamp(self, name: str) -> None:
        self.timings.setdefault(name, time.perf_counter() - self._started)

    def on_result_pane_shown(self, event: ResultPane.Shown) -> None:
        if isinstance(event.control, OverviewPane):
            self._stamp("overview filled")

    def on_result_pane_run_broken(self, event: ResultPane.RunBroken) -> None:
        run = self.runs.get(event.label)
        if run is None or run.error == event.error:
            return
        self.runs[event.label] = dataclasses.replace(run, error=event.error)
        self.query_one("#tree", RunTree).flag(event.label, event.error)
        self._select(self._current_ref())

    # -- actions ----------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_reload(self) -> None:
        self.watcher = Watcher(self.paths)  # forgets every listing, header and log it read
        self.store.clear()
        for pane in self.query(ResultPane):
            pane.forget()
        self._look_for_runs()
        self.notify("Looking for runs again; cached results dropped.", timeout=3)

    def action_mark(self) -> None:
        run = self.selection.run
        if run is None:
            self.notify("Select a run in the tree first.", severity="warning")
            return
        marked = toggle_mark(tuple(self.runs[m] for m in self._marks), run)
        self._marks = tuple(r.label for r in marked)
        self.query_one("#tree", RunTree).set_marks(self._marks)
        if len(self._marks) == 2:
            a, b = self._marks
            self.notify(f"Comparing A={a} with B={b}: Compare tab (5)", timeout=4)
        elif self._marks:
            self.notify(f"Marked {self._marks[0]} as A; mark one more run with c.", timeout=4)
        else:
            self.notify("No runs marked.", timeout=3)
        self._select(self._current_ref())

    def action_reference(self) -> None:
        choices = self.references
        self.reference = choices[(choices.index(self.reference) + 1) % len(choices)]
        self.notify(f"Sign flips now count from the {self.reference} weights.", timeout=4)
        self._select(self._current_ref())

    async def action_filter(self) -> None:
        await self._ensure_pane("layers")
        self.query_one("#tabs", TabbedContent).active = "layers"
        self.query_one("#layers-pane", LayersPane).focus_filter()

    def action_export(self) -> None:
        try:
            pane = self._active_pane()
        except NoMatches:  # the tab's body is being mounted: nothing on it to export yet
            return
        try:
            request = pane.figure_request(self.selection)
        except SignscopeError as exc:
            self.notify(str(exc), severity="warning", timeout=6)
            return
        self.notify(f"Exporting {request.title} ...", timeout=2)
        self.export_figure(request)

    @work(thread=True, group="export", exit_on_error=False)
    def export_figure(self, request: FigureRequest) -> tuple[str, str]:
        """Write the figures; return the notification (text, severity) for the UI thread."""
        try:
            paths, skipped = request.export(self.store, self.export_dir, self.export_format)
        except SignscopeError as exc:
            return str(exc), "error"
        except Exception as exc:  # a bug in a figure must not take the browser down
            return f"export failed: {type(exc).__name__}: {exc}", "error"
        self.exported.extend(paths)
        message = "wrote " + ", ".join(str(p) for p in paths)
        if skipped:
            message += "\nnot drawn: " + "; ".join(skipped)
        return message, "information"
