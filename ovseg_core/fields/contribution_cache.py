"""A byte-budgeted LRU cache of per-view contributions for training, spilling to disk.

A LERF-sized view holds ~15M contributions (~90 MB at 6 bytes each): 200 views do not fit in
memory, but training revisits every view each epoch. Entries past the budget are written once to
a private temporary directory and read back whole (``np.load``, not a memory map, so the
process's resident memory stays bounded by the budget plus the view in use). Spilling rather
than recomputing: reading 90 MB back takes well under a second from the page cache or an SSD,
while recomputing a view's top-64 contributions takes ~9 s on the CPU backend (a full render).
The directory goes away on ``close()``, on leaving a ``with`` block, when the cache is
garbage-collected, and at interpreter exit (``weakref.finalize``).
"""

from __future__ import annotations

import collections
import shutil
import tempfile
import weakref
from collections.abc import Hashable
from pathlib import Path

from ovseg_core.fields.view_contributions import ViewContributions


class ContributionCache:
    """``get``/``put`` ``ViewContributions`` by key; at most ``budget_bytes`` held in memory."""

    def __init__(self, budget_bytes: int, spill_dir: str | None = None) -> None:
        if budget_bytes < 0:
            raise ValueError(f"the cache budget must be >= 0 bytes, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._spill_parent = spill_dir
        self._memory: collections.OrderedDict[Hashable, ViewContributions] = collections.OrderedDict()
        self._files: dict[Hashable, Path] = {}
        self._dir: Path | None = None
        self._finalizer: weakref.finalize | None = None
        self.memory_bytes = 0
        """Bytes of the entries held in memory now."""
        self.peak_bytes = 0
        """Most bytes ever held in memory at once (never above the budget: an entry larger than
        the whole budget is only spilled, and lives on just while its caller uses it)."""
        self.num_spilled = 0
        """Entries written to disk so far."""
        self.num_loaded = 0
        """Reads back from disk so far."""

    def __len__(self) -> int:
        return len(self._memory.keys() | self._files.keys())

    def __contains__(self, key: Hashable) -> bool:
        return key in self._memory or key in self._files

    @property
    def spill_dir(self) -> Path | None:
        """The temporary directory of spilled entries (None until the first spill)."""
        return self._dir

    def get(self, key: Hashable) -> ViewContributions | None:
        contrib = self._memory.get(key)
        if contrib is not None:
            self._memory.move_to_end(key)
            return contrib
        path = self._files.get(key)
        if path is None:
            return None
        contrib = ViewContributions.load(str(path))
        self.num_loaded += 1
        self._hold(key, contrib)
        return contrib

    def put(self, key: Hashable, contrib: ViewContributions) -> None:
        self._drop_memory(key)
        stale = self._files.pop(key, None)  # a new value makes an older spill stale
        if stale is not None:
            stale.unlink(missing_ok=True)
        self._hold(key, contrib)

    def clear(self) -> None:
        """Drop every entry and delete the spill directory (the cache stays usable)."""
        self._memory.clear()
        self._files.clear()
        self.memory_bytes = 0
        if self._finalizer is not None:
            self._finalizer()
        self._dir = self._finalizer = None

    close = clear

    def __enter__(self) -> ContributionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------
    def _hold(self, key: Hashable, contrib: ViewContributions) -> None:
        size = contrib.nbytes()
        # Evict least recently used entries until this one fits; one larger than the whole
        # budget is not held at all (only spilled), so memory never exceeds the budget.
        while self._memory and self.memory_bytes + size > self.budget_bytes:
            old_key, old = self._memory.popitem(last=False)
            self.memory_bytes -= old.nbytes()
            self._spill(old_key, old)
        if size > self.budget_bytes:
            self._spill(key, contrib)
            return
        self._memory[key] = contrib
        self.memory_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.memory_bytes)

    def _drop_memory(self, key: Hashable) -> None:
        old = self._memory.pop(key, None)
        if old is not None:
            self.memory_bytes -= old.nbytes()

    def _spill(self, key: Hashable, contrib: ViewContributions) -> None:
        if key in self._files:  # written before and unchanged since
            return
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="ovseg-contributions-", dir=self._spill_parent))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._dir), ignore_errors=True)
        path = self._dir / f"{self.num_spilled}.npz"
        contrib.save(str(path))
        self._files[key] = path
        self.num_spilled += 1
