"""Undo/redo for one tab's selection edits: snapshots of (selection, hidden), bounded in count, so
hiding is undone together with the selection it hid."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MAX_STEPS = 64
"""Undo depth; at 2 bytes per Gaussian a 1M-Gaussian scene keeps at most 128 MB of history (less:
snapshots share the arrays of unchanged masks)."""


class Snapshot(NamedTuple):
    selection: np.ndarray
    """``[N]`` bool."""
    hidden: np.ndarray
    """``[N]`` bool."""


class SelectionHistory:
    """``record`` the state before each edit; ``undo``/``redo`` return the snapshot to restore.

    Snapshots are kept by reference: callers pass masks they never change in place."""

    def __init__(self, max_steps: int = MAX_STEPS) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = max_steps
        self._undo: list[Snapshot] = []
        self._redo: list[Snapshot] = []

    def record(self, before: Snapshot) -> None:
        """Remember ``before``, the state an edit is about to change (a new edit forgets the redo steps)."""
        self._undo.append(before)
        del self._undo[: -self.max_steps]
        self._redo.clear()

    def undo(self, current: Snapshot) -> Snapshot | None:
        """The state before the last edit (None when there is nothing to undo)."""
        if not self._undo:
            return None
        self._redo.append(current)
        return self._undo.pop()

    def redo(self, current: Snapshot) -> Snapshot | None:
        """The state an undo replaced (None when there is nothing to redo)."""
        if not self._redo:
            return None
        self._undo.append(current)
        return self._redo.pop()
