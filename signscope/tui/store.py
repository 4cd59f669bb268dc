"""Opened runs and computed tables, shared by every tab.

The TUI computes each tab's tables once per (run, level, options) key and keeps them, so
going back to a tab or a level is instant. Workers run in threads, so two tabs may ask for
the same thing at once: a lock per key makes the second wait for the first instead of
computing it again.

The last element of every key is the stamps of the files the value was computed from
(``FoundRun.inputs``), so a value is found again exactly while those files are unchanged, and
a new level leaves the tables of earlier levels valid. Storing a value replaces the one kept
under the same key with other stamps (same ``key[:-1]``): that one can never be asked for again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from signscope.errors import SignscopeError

if TYPE_CHECKING:
    from signscope.discover import FoundRun


class RunOpenError(SignscopeError):
    """``open_run`` refused a run: the tree flags that run with this message."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label = label


class Store:
    """A thread-safe memo of ``signscope.open_run`` results and per-key computations."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._slots: dict[Hashable, Hashable] = {}  # key[:-1] -> the key stored under it
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._generation = 0  # bumped by clear(): results started before it are dropped
        self.computed = 0  # how many keys were computed rather than found (tests, benchmarks)

    def _lock_for(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value under ``key``, computing it with ``compute()`` the first time.

        An exception is not cached: the next call tries again (the user may have fixed the file).
        """
        if key in self._values:
            return self._values[key]
        generation = self._generation
        with self._lock_for(key):
            if key in self._values:
                return self._values[key]
            value = compute()
            self.computed += 1
            if generation == self._generation:
                self._keep(key, value)
            return value

    def _keep(self, key: Hashable, value: Any) -> None:
        with self._guard:
            slot = key[:-1] if isinstance(key, tuple) and key else key
            replaced = self._slots.get(slot)
            if replaced is not None and replaced != key:
                self._values.pop(replaced, None)
                self._locks.pop(replaced, None)
            self._slots[slot] = key
            self._values[key] = value

    def peek(self, key: Hashable) -> Any | None:
        """The cached value, or None; never computes (safe on the UI thread)."""
        return self._values.get(key)

    def run(self, found: FoundRun) -> Any:
        """The opened run of ``found``, as long as its files are those discovery saw."""
        from signscope.api import open_run

        label = found.label

        def open_it() -> Any:
            try:
                return open_run(label)
            except SignscopeError as exc:
                raise RunOpenError(label, str(exc)) from None

        return self.get(("open", label, found.inputs()), open_it)

    def clear(self) -> None:
        with self._guard:
            self._generation += 1
            self._values.clear()
            self._slots.clear()
            self._locks.clear()
