"""The CLI in-process, for tests that check what a user sees (no subprocess start-up)."""

from __future__ import annotations

import contextlib
import io

from signscope.cli import main


def cli(*args):
    """Exit status, stdout and stderr of ``signscope ARGS``, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def assert_one_error_line(rc, err, *needles):
    """Exit status 1 and one ``error:`` line on stderr, no traceback, holding every needle."""
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
