"""Give freed native memory back to the OS now and then.

Each frame allocates and frees tens of MB of numpy/torch buffers; glibc keeps freed arenas, so a
long session's RSS creeps up by ~1 MB a prompt change without ever being in use. ``malloc_trim``
returns that memory; calling it at most every few seconds costs well under a millisecond a frame.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

TRIM_EVERY_S = 2.0

_lock = threading.Lock()
_last = 0.0
_libc = None


def _malloc_trim():  # noqa: ANN202
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
            _libc = lib if lib is not None and hasattr(lib, "malloc_trim") else False
        except OSError:  # not glibc: nothing to trim
            _libc = False
    return _libc.malloc_trim if _libc else None


def trim_heap_now_and_then() -> bool:
    """Trim the heap if the last trim is older than ``TRIM_EVERY_S``; True when it trimmed."""
    global _last
    now = time.monotonic()
    if now - _last < TRIM_EVERY_S or not _lock.acquire(blocking=False):
        return False
    try:
        _last = now
        trim = _malloc_trim()
        if trim is None:
            return False
        trim(0)
        return True
    finally:
        _lock.release()
