"""What every ovseg CLI shares: parse with tyro (before any heavy import, so ``--help`` is quick),
run the command, and turn ovseg's errors into one ``<prog>: error: ...`` line with exit status 2.

Only errors about the input are one line: ovseg's domain errors (``OvsegError``) and OS errors on a
path (a missing, unreadable or unwritable file) or a full disk. Anything else is a bug in ovseg: it
prints its traceback and a line asking for a report, exit status 1."""

from __future__ import annotations

import errno
import inspect
import sys
import traceback
from collections.abc import Callable
from typing import Any

import tyro

from ovseg_core.errors import Cancelled, OvsegError

REPORT_BUGS_TO = "the ovseg issue tracker"
"""Where the bug line sends a traceback."""
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""OS errors about the machine, not ovseg's code (a full disk or quota, a read-only file system)."""


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is about the input or the machine (one line) rather than a bug (a traceback)."""
    if isinstance(error, OvsegError):
        return True
    if isinstance(error, OSError):
        return error.filename is not None or error.errno in _ENVIRONMENT_ERRNOS
    return False


def describe(command: type, examples: str) -> str:
    """``--help`` text: the command's docstring, then its examples (one per line)."""
    doc = inspect.cleandoc(command.__doc__ or "")
    lines = "\n".join(f"  {line}" for line in examples.strip().splitlines())
    return f"{doc}\n\nexamples:\n{lines}"


def run_cli(
    prog: str,
    command_type: Any,
    argv: list[str] | None = None,
    *,
    description: str | None = None,
    report: Callable[[Any], str | None] = lambda result: None,
) -> int:
    """Parse ``argv`` into ``command_type`` (a dataclass or a union of subcommands), run its
    ``execute()`` and print ``report(result)``. Returns the exit status."""
    cmd = tyro.cli(command_type, args=argv, prog=prog, description=description)
    return run_command(prog, cmd, report)


def run_command(prog: str, cmd: Any, report: Callable[[Any], str | None] = lambda result: None) -> int:
    """Run a parsed command: 0 on success, 2 on a user error, 130 when interrupted, 1 on a bug."""
    try:
        result = cmd.execute()
    except (Cancelled, KeyboardInterrupt):
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - sorted into user errors and bugs here, the one place
        if is_user_error(e):
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(
            f"{prog}: internal error: this is a bug in ovseg, not a problem with your input; please report it "
            f"to {REPORT_BUGS_TO} with the traceback above and the command line",
            file=sys.stderr,
        )
        return 1
    text = report(result)
    if text:
        print(text, flush=True)
    return 0
