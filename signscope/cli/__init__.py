"""Command-line interface. Kept thin: parse, call a function that returns data, render it.

Each command lives in its own module and registers itself on :data:`app`; the module
names are listed in ``COMMAND_MODULES`` (import order = order in ``--help``). Command
modules must not import torch at import time: only the training/import commands load
it, inside the command function.
"""

from __future__ import annotations

import importlib
import sys
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

for _name in COMMAND_MODULES:
    importlib.import_module(f"signscope.cli.{_name}")


def _error(message: str) -> None:
    # One line, always: collapse whatever newlines the message carries.
    text = " ".join(str(message).split())
    print(f"error: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit status (0 ok, 1 error, 2 usage error)."""
    from typer.exceptions import Abort, Exit, TyperException

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
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
    except Exception as exc:  # a bug: still one line unless --debug, but say what it was
        if debug:
            raise
        _error(f"{type(exc).__name__}: {exc} (rerun with --debug for a traceback)")
        return 1
    return 0
