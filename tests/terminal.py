"""A command in a real pseudo-terminal (tmux, 120x36), for tests that read the screen."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Callable

_sessions = itertools.count()


class Terminal:
    """``with Terminal(command, cwd) as term:`` runs ``command`` in a tmux server of its own;
    ``term.screen()`` is what the terminal shows, ``term.send(keys)`` types."""

    def __init__(self, command: str, cwd, env: dict[str, str] | None = None) -> None:
        self.tmux = ["tmux", "-L", f"signscope-test-{os.getpid()}-{next(_sessions)}"]
        # pytest-xdist workers export COLUMNS/LINES, which would override the window size.
        full = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        full.update(TERM="xterm-256color", **(env or {}))
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-s", "t", "-x", "120", "-y", "36", command],
            check=True,
            cwd=cwd,
            env=full,
        )

    def screen(self) -> str:
        return subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", "t"], capture_output=True, text=True
        ).stdout

    def wait_for(
        self, *texts: str, timeout: float = 60.0, stop: Callable[[], bool] = lambda: False
    ) -> str:
        """The screen once it shows every one of ``texts``, or when ``stop()`` holds or the
        time is up (the caller's assertions then say what is missing)."""
        deadline = time.monotonic() + timeout
        text = self.screen()
        while not all(t in text for t in texts) and time.monotonic() < deadline and not stop():
            time.sleep(0.2)
            text = self.screen()
        return text

    def send(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", "t", *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
