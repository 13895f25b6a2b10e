"""Memory and threads of the CPU renderer: scratch arrays kept across frames, aligned for the records'
random reads, and a thread count suited to the work's size."""

from __future__ import annotations

import contextlib
import math
import mmap

import numba
import numpy as np

PARALLEL_MIN_ITEMS = 100_000
"""Stages over fewer Gaussians (or pairs) than this run on one thread: waking the pool costs more than it
saves, and far more when other processes keep the cores busy."""


@contextlib.contextmanager
def threads_for(n_items: int):
    """numba's threads for a stage over ``n_items``: all of them, or one below ``PARALLEL_MIN_ITEMS``."""
    if n_items >= PARALLEL_MIN_ITEMS:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


_HUGE_PAGE = 2 << 20


def cache_aligned_empty(size: int, dtype: type) -> np.ndarray:
    """A 1D array starting on a 64-byte cache line: numpy's large arrays start 16 bytes past one, so
    every 64-byte record spanned two lines, and the stages that read records at random fetched both.

    From 2 MiB on it is an anonymous mapping aligned to 2 MiB and marked for transparent huge pages
    (where the kernel offers them, e.g. ``madvise`` mode): records and tile lists are read at random,
    and with 4 KiB pages most of those reads also missed the TLB."""
    itemsize = np.dtype(dtype).itemsize
    nbytes = size * itemsize
    if nbytes >= _HUGE_PAGE and hasattr(mmap, "MADV_HUGEPAGE"):
        region = mmap.mmap(-1, nbytes + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        raw = np.frombuffer(region, np.uint8)
        skip = -raw.ctypes.data % _HUGE_PAGE
        with contextlib.suppress(OSError):  # a kernel without THP: plain pages
            region.madvise(mmap.MADV_HUGEPAGE, skip, nbytes)
        return raw[skip : skip + nbytes].view(dtype)
    raw = np.empty(nbytes + 64, np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip : skip + nbytes].view(dtype)


class ScratchBuffers:
    """Named scratch arrays kept across frames and grown when too small: fresh ones cost a page fault
    per 4 KiB every frame, which was a third of a frame's time. Every stage writes all entries a later
    stage reads, so none needs clearing. Arrays returned to callers never alias these."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """The scratch array ``name`` viewed as ``shape`` (contents undefined)."""
        size = math.prod(shape)
        buf = self._arrays.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = cache_aligned_empty(max(size, int(size * 1.25) if buf is not None else size), dtype)
            self._arrays[name] = buf
        return buf[:size].reshape(shape)
