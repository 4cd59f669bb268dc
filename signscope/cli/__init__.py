"""Command-line interface. Kept thin: parse, call a function that returns data, render it.

Each command lives in its own module and registers itself on :data:`app`; the module
names are listed in ``COMMAND_MODULES`` (their order is the order in ``--help``). A command
line that names a command imports only that command's module (``signscope tui`` never
imports polars before its first screen); anything else (``--help``, a typo) imports them
all. Command modules must not import torch at import time: only the training/import
commands load it, inside the command function.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Sequence

from signscope.cli.app import app
from signscope.errors import SignscopeError

COMMAND_MODULES: tuple[str, ...] = (
    "train",
    "show",
    "flips",
    "masks",
    "signs",
    "bn",
    "acc",
    "importcmd",
    "tui",
    "export",
    "report",
    "neuron",
    "bench",
)


def _command_name(args: Sequence[str]) -> str | None:
    """The first argument that is not an option (--debug included): the command."""
    return next((a for a in args if not a.startswith("-")), None)


# Command name -> the module that defines it (`import` is a keyword, hence importcmd).
_MODULE_OF = {("import" if m == "importcmd" else m): m for m in COMMAND_MODULES}


def load_commands(args: Sequence[str] = ()) -> None:
    """Register the command that ``args`` names, or every command when it names none."""
    module = _MODULE_OF.get(_command_name(args))
    for mod in [module] if module else COMMAND_MODULES:
        importlib.import_module(f"signscope.cli.{mod}")
    # Keep --help in COMMAND_MODULES order whatever was imported first in this process.
    order = {f"signscope.cli.{m}": i for i, m in enumerate(COMMAND_MODULES)}
    app.registered_commands.sort(key=lambda c: order.get(c.callback.__module__, len(order)))


def _error(message: str) -> None:
    from signscope.display import printable

    # One line, always: collapse whatever newlines the message carries. Paths in it may hold
    # bytes that are not UTF-8 (printable shows them as U+FFFD instead of failing).
    text = " ".join(printable(str(message)).split())
    print(f"error: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit status (0 ok, 1 error, 2 usage error)."""
    from typer.exceptions import Abort, Exit, TyperException

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    load_commands(args)
    try:
        app(args=args, prog_name="signscope", standalone_mode=False)
    except Exit as exc:
        return exc.exit_code
    except TyperException as exc:  # usage errors from the argument parser
        if debug:
            raise
        _error(exc.format_message() + "  (see --help)")
        return getattr(exc, "exit_code", 2)
    except SignscopeError as exc:
        if debug:
            raise
        _error(str(exc))
        return exc.exit_code
    except (KeyboardInterrupt, Abort):
        _error("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:  # the environment (disk full, permissions), not a bug: name the file
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename is not None else ""
        _error(f"{where}{exc.strerror or exc}")
        return 1
    except Exception as exc:  # a bug: still one line unless --debug, but say what it was
        if debug:
            raise
        _error(f"{type(exc).__name__}: {exc} (rerun with --debug for a traceback)")
        return 1
    return 0


# Commands that only read runs and print (or atomically write) their result, and the TUI once
# Textual has restored the terminal. They end with os._exit once their output is flushed and
# no other thread is left: tearing down polars, numpy, rich and Textual at interpreter exit
# costs 0.15-0.5 s (a tenth of `signscope flips` on a ResNet50-sized run; most of the wait
# after `q` in the TUI). Commands that train, start processes or draw figures keep the normal
# exit, whose atexit hooks they need.
FAST_EXIT_COMMANDS = frozenset({"show", "flips", "masks", "signs", "bn", "acc", "tui"})


def entry() -> None:
    """The ``signscope`` console script and ``python -m signscope``."""
    code = main()
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if not others and _command_name(sys.argv[1:]) in FAST_EXIT_COMMANDS:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):  # reader went away, or stream closed
            code = code or 1
        os._exit(code)
    sys.exit(code)
