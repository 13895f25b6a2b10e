"""Undo/redo for one tab's selection: snapshots of the ``[N]`` bool mask, bounded in count."""

from __future__ import annotations

import numpy as np

MAX_STEPS = 64
"""Undo depth; at 1 byte per Gaussian a 1M-Gaussian scene keeps at most 64 MB of history."""


class SelectionHistory:
    """``record`` the selection before each edit; ``undo``/``redo`` return the mask to restore."""

    def __init__(self, max_steps: int = MAX_STEPS) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = max_steps
        self._undo: list[np.ndarray] = []
        self._redo: list[np.ndarray] = []

    def record(self, selection: np.ndarray) -> None:
        """Remember ``selection`` as it is before an edit (a new edit forgets the redo steps)."""
        if self._undo and np.array_equal(self._undo[-1], selection):
            return
        self._undo.append(np.array(selection, bool, copy=True))
        del self._undo[: -self.max_steps]
        self._redo.clear()

    def undo(self, current: np.ndarray) -> np.ndarray | None:
        """The selection before the last edit (None when there is nothing to undo)."""
        if not self._undo:
            return None
        self._redo.append(np.array(current, bool, copy=True))
        return self._undo.pop()

    def redo(self, current: np.ndarray) -> np.ndarray | None:
        """The selection an undo replaced (None when there is nothing to redo)."""
        if not self._redo:
            return None
        self._undo.append(np.array(current, bool, copy=True))
        return self._redo.pop()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)
