"""Errors that the CLI turns into one ``error:`` line and a nonzero exit.

Anything raised as :class:`SignscopeError` is a problem with the user's input or
environment (a corrupt file, a mismatched run, a missing data set), never a bug,
so the CLI prints its message without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations


class SignscopeError(Exception):
    """A user-facing failure; ``str(exc)`` is the whole message (without ``error:``)."""

    exit_code = 1


class RunFormatError(SignscopeError):
    """A run directory or checkpoint that cannot be read or is inconsistent."""


class UsageError(SignscopeError):
    """Options that make no sense together; exits with status 2 like other usage errors."""

    exit_code = 2


def listed(names) -> str:
    """Up to four names, sorted, and how many more: a list an error line can hold."""
    names = sorted(names)
    shown = ", ".join(names[:4])
    return shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")
