"""The body of one tab: compute its tables in a thread worker, cache them, show them.

A pane turns the :class:`Selection` into a hashable key. The first time a key is seen, the
tables are computed in a thread worker (the metrics are numpy and release the GIL for most
of their time) while the pane shows Textual's loading indicator; the result is kept in the
shared :class:`Store`, so coming back is instant. When the user moves on, the worker is
cancelled; its computation stops at the next chunk it reports (:class:`Abandoned`) unless the
user has come back to it meanwhile, so a stale scan of a multi-GB run neither competes with
the new one nor holds up quitting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import NoActiveWorker, Worker, WorkerState, get_current_worker

from signscope.discover import FoundRun
from signscope.display import literal
from signscope.errors import SignscopeError
from signscope.tui.export import FigureRequest
from signscope.tui.state import Selection
from signscope.tui.store import RunOpenError, Store


class Abandoned(Exception):
    """Raised inside a cancelled worker's computation to stop it early."""


class ResultPane(Vertical):
    """Base class of the tab bodies. Subclasses define the hooks in REQUIRED_HOOKS."""

    class RunBroken(Message):
        """A run could not be opened; the app flags it in the tree."""

        def __init__(self, label: str, error: str) -> None:
            super().__init__()
            self.label = label
            self.error = error

    class Shown(Message):
        """A result is on screen (the app times its first screen with it)."""

        def __init__(self, pane: ResultPane) -> None:
            super().__init__()
            self.pane = pane

        @property
        def control(self) -> ResultPane:
            return self.pane

    class Progress(Message):
        """How far the worker for ``key`` is (elements done of total), from its thread."""

        def __init__(self, key: Hashable, done: int, total: int) -> None:
            super().__init__()
            self.key = key
            self.done = done
            self.total = total

    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.selection = Selection()
        self._wanted: Hashable | None = None
        self._shown: Hashable | None = None
        self._pending: dict[Worker, Hashable] = {}
        self.result: Any = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="message")
        yield from self.compose_content()
        yield Static("", classes="progress")

    # -- for subclasses -------------------------------------------------------------------
    # Every tab defines the four hooks of REQUIRED_HOOKS (checked when the class is created):
    #   compose_content() -> ComposeResult       the widgets between the message and progress lines
    #   key(sel) -> Hashable | None               the cache key of what ``sel`` shows here; None
    #                                             when there is nothing to compute
    #   compute(sel, progress) -> result          in a worker thread: call the inspection API;
    #                                             ``progress(done, total)`` is its callback
    #   show(result, sel)                         on the UI thread: put ``result`` on screen
    REQUIRED_HOOKS = ("compose_content", "key", "compute", "show")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [h for h in ResultPane.REQUIRED_HOOKS if not callable(getattr(cls, h, None))]
        if missing:
            raise TypeError(f"{cls.__name__} must define {', '.join(missing)} (see ResultPane)")

    def idle_message(self, sel: Selection) -> str:
        """What to say when ``key`` is None."""
        if sel.run is None:
            return "Select a run in the tree on the left."
        if sel.run.error:
            return f"[b red]✗ {literal(sel.run.label)}[/]\n\n{literal(sel.run.error)}"
        return "This run has no levels yet."

    def follow(self, sel: Selection) -> None:
        """Cheap updates when the selection changed but the key did not (e.g. move a cursor,
        or a poll found new epochs of the run)."""

    def clock(self) -> None:
        """Called every second: update what shows the time (e.g. since the last epoch)."""

    def prepare(self, sel: Selection) -> None:
        """Show at once what needs no computation (the run's config); runs on the UI thread."""

    def busy_widgets(self) -> tuple[Widget, ...]:
        """The parts of the pane that loading indicators cover while the worker runs."""
        return (self.query_one(".content"),)

    @property
    def busy(self) -> bool:
        return any(w.loading for w in self.busy_widgets())

    def _set_busy(self, value: bool) -> None:
        for widget in self.busy_widgets():
            widget.loading = value
        if not value:
            self.set_class(False, "-progress")

    def _reporter(self, key: Hashable) -> Callable[[int, int], None]:
        """A thread-safe ``progress`` callback posting at most ten updates a second; it stops
        the computation of a cancelled worker whose result nobody wants any more."""
        last = [0.0]
        app = self.app

        def report(done: int, total: int) -> None:
            try:
                cancelled = get_current_worker().is_cancelled
            except NoActiveWorker:  # called outside a worker (tests call compute directly)
                cancelled = False
            if cancelled and (self._wanted != key or getattr(app, "quitting", False)):
                raise Abandoned(f"{key!r}: no longer wanted")
            now = time.monotonic()
            if now - last[0] >= 0.1 or done >= total:
                last[0] = now
                self.post_message(self.Progress(key, done, total))

        return report

    def on_result_pane_progress(self, event: ResultPane.Progress) -> None:
        event.stop()
        if event.key != self._wanted or not self.busy or not event.total:
            return
        share = event.done / event.total
        self.query_one(".progress", Static).update(
            f"reading checkpoints: {share:.0%} ({event.done / 1e6:.1f}M of "
            f"{event.total / 1e6:.1f}M weights)"
        )
        self.set_class(True, "-progress")

    def figure_request(self, sel: Selection) -> FigureRequest:
        """What ``e`` exports from this tab; raises SignscopeError when there is nothing."""
        raise SignscopeError("this tab has no figure to export")

    @staticmethod
    def healthy_run(sel: Selection) -> FoundRun:
        """The selected run, or a SignscopeError saying why there is none to export."""
        if sel.run is None:
            raise SignscopeError("select a run in the tree first")
        if not sel.run.ok:
            raise SignscopeError(f"{sel.run.label} cannot be read: {sel.run.error}")
        return sel.run

    # -- machinery ------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """Replace the content with a message (empty selection, error, not applicable)."""
        self.query_one(".message", Static).update(text)
        self.set_class(True, "-message")
        self._shown = None
        self.result = None

    def update_selection(self, sel: Selection, quiet: bool = False) -> None:
        """Show ``sel``: from the cache when possible, otherwise through a worker.

        ``quiet`` (the same run's files changed, not the user's choice) keeps what is on screen,
        without a loading indicator, until the new result replaces it.
        """
        self.selection = sel
        key = self.key(sel)
        self._wanted = key
        if key is None:
            self._set_busy(False)
            self.say(self.idle_message(sel))
            return
        if key == self._shown:
            self._set_busy(False)  # a worker for where the user was a moment ago may still run
            self.follow(sel)
            return
        self.set_class(False, "-message")
        self.prepare(sel)
        cached = self.store.peek(key)
        if cached is not None:
            self._apply(key, cached)
            return
        if any(k == key and not w.is_cancelled for w, k in self._pending.items()):
            return  # already on its way
        if not (quiet and self._shown is not None):
            self._set_busy(True)
        # Start the worker once this state is painted: its first job imports polars and
        # numpy (~0.4 s holding the GIL), which would otherwise hold back the first screen.
        self.call_after_refresh(self._start_worker, key, sel)

    def _start_worker(self, key: Hashable, sel: Selection) -> None:
        if key != self._wanted or key == self._shown:
            return  # the user moved on, or the result arrived meanwhile
        if any(k == key and not w.is_cancelled for w, k in self._pending.items()):
            return
        cached = self.store.peek(key)
        if cached is not None:
            self._apply(key, cached)
            return
        report = self._reporter(key)
        worker = self.run_worker(
            lambda: self.store.get(key, lambda: self.compute(sel, report)),
            name=f"{type(self).__name__} {key!r}",
            group="compute",
            exclusive=True,
            exit_on_error=False,
            thread=True,
        )
        self._pending[worker] = key

    def forget(self) -> None:
        """Drop what is shown (the store was cleared by a reload)."""
        self._shown = None

    def _apply(self, key: Hashable, result: Any) -> None:
        self._set_busy(False)
        self.set_class(False, "-message")
        self.result = result
        try:
            self.show(result, self.selection)
        except Exception as exc:  # a bug in one tab must not take the whole browser down
            self.say(f"[b]Internal error[/b] ({type(exc).__name__}): {literal(str(exc))}")
            return
        self._shown = key
        self.post_message(self.Shown(self))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker not in self._pending or event.state in (WorkerState.PENDING, WorkerState.RUNNING):
            return
        key = self._pending.pop(worker)
        event.stop()
        if key != self._wanted:
            return
        if event.state is WorkerState.SUCCESS:
            self._apply(key, worker.result)
        elif event.state is WorkerState.ERROR:
            self._set_busy(False)
            error = worker.error
            if isinstance(error, RunOpenError):
                self.post_message(self.RunBroken(error.label, str(error)))
            if isinstance(error, SignscopeError):
                self.say(f"[b]Cannot show this:[/b] {literal(str(error))}")
            else:
                self.say(f"[b]Internal error[/b] ({type(error).__name__}): {literal(str(error))}")
        elif key not in self._pending.values():
            # Cancelled, yet still wanted (the user came back to it): the thread may have
            # finished into the store anyway; take it from there or ask again.
            self.update_selection(self.selection)
