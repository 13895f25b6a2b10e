"""Reading GUI values a client sent, as untrusted input.

viser stores whatever value a client's message carries (a number field can receive 1e300 whatever
its ``max``; a dropdown any string), so every panel reads its widgets through these helpers: a
number is clamped into its range and written back, an unknown choice is refused and the widget
reset to its last good value. Number widgets are created with float values, since viser casts a
client value to the widget's type and an int of 1e300 cannot be serialised to any client.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ovseg_core.errors import UsageError

MAX_TEXT = 2000
"""Longest text a panel accepts (a prompt list, a path, a file name)."""


def clamped_number(handle: Any, lo: float, hi: float, *, integer: bool = False) -> float:
    """``handle.value`` clamped into [lo, hi] (non-numbers and NaN give ``lo``); the widget is
    corrected when it held something else."""
    raw = handle.value
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        value = lo
    if math.isnan(value):
        value = lo
    value = min(max(value, lo), hi)
    if integer:
        value = float(round(value))
    if raw != value:
        handle.value = value
    return value


def checked_choice(handle: Any, options: Sequence[str], fallback: str) -> str:
    """``handle.value`` if it is one of ``options``; otherwise reset the widget to ``fallback``
    and raise a ValueError for the one client that sent it."""
    value = handle.value
    if isinstance(value, str) and value in options:
        return value
    handle.value = fallback
    shown = value[:40] if isinstance(value, str) else type(value).__name__
    raise UsageError(f"{shown!r} is not one of {', '.join(options)}; kept {fallback!r}")


def checked_text(handle: Any, what: str, limit: int = MAX_TEXT) -> str:
    """``handle.value`` as a string of at most ``limit`` characters (longer is refused)."""
    value = handle.value
    if not isinstance(value, str):
        handle.value = ""
        raise UsageError(f"{what} must be text")
    if len(value) > limit:
        raise UsageError(f"{what} is {len(value):,} characters long; the limit is {limit:,}")
    return value
