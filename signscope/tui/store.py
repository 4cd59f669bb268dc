"""Opened runs and computed tables, shared by every tab and kept until the user reloads.

The TUI computes each tab's tables once per (run, level, options) key and keeps them, so
going back to a tab or a level is instant. Workers run in threads, so two tabs may ask for
the same thing at once: a lock per key makes the second wait for the first instead of
computing it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from signscope.errors import SignscopeError


class RunOpenError(SignscopeError):
    """``open_run`` refused a run: the tree flags that run with this message."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label = label


class Store:
    """A thread-safe memo of ``signscope.open_run`` results and per-key computations."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
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
                self._values[key] = value
            return value

    def peek(self, key: Hashable) -> Any | None:
        """The cached value, or None; never computes (safe on the UI thread)."""
        return self._values.get(key)

    def run(self, label: str) -> Any:
        """The opened run for ``label`` (the path as shown in the tree)."""
        from signscope.api import open_run

        def open_it() -> Any:
            try:
                return open_run(label)
            except SignscopeError as exc:
                raise RunOpenError(label, str(exc)) from None

        return self.get(("open", label), open_it)

    def clear(self) -> None:
        with self._guard:
            self._generation += 1
            self._values.clear()
            self._locks.clear()
