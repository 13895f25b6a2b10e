"""What every ovseg CLI shares: parse with tyro (before any heavy import, so ``--help`` is quick),
run the command, and turn ovseg's errors into one ``<prog>: error: ...`` line with exit status 2."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import tyro

from ovseg_core.errors import Cancelled, OvsegError

USER_ERRORS: tuple[type[BaseException], ...] = (OvsegError, ValueError, OSError)
"""Failures caused by the input (bad files, values or paths): reported in one line, no traceback."""


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
    """Run a parsed command: 0 on success, 2 on a user error, 130 when interrupted."""
    try:
        result = cmd.execute()
    except (Cancelled, KeyboardInterrupt):
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    text = report(result)
    if text:
        print(text, flush=True)
    return 0
