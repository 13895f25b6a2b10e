"""Depth stage: one global, stable depth sort of the visible Gaussians."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def depth_order(ids, depths, n_chunks):
    """``ids`` sorted by ``depths[ids]`` (all > 0), stable: LSD radix sort on the float bits, 3 x 11 bits,
    parallel over ``n_chunks`` contiguous runs (each counts its digits, then scatters from its own
    cursors; chunk order is kept, so every pass stays stable)."""
    n = ids.shape[0]
    step = (n + n_chunks - 1) // n_chunks
    src_k, src_i = np.empty(n, np.uint32), np.empty(n, ids.dtype)
    dst_k, dst_i = np.empty(n, np.uint32), np.empty(n, ids.dtype)
    bits = depths.view(np.uint32)
    for j in prange(n):
        src_k[j] = bits[ids[j]]
        src_i[j] = ids[j]
    hist = np.empty((n_chunks, 2048), np.int64)
    for shift in (0, 11, 22):
        for c in prange(n_chunks):
            hist[c, :] = 0
            for j in range(c * step, min((c + 1) * step, n)):
                hist[c, (src_k[j] >> shift) & 2047] += 1
        run = 0
        for d in range(2048):
            for c in range(n_chunks):
                count = hist[c, d]
                hist[c, d] = run
                run += count
        for c in prange(n_chunks):
            for j in range(c * step, min((c + 1) * step, n)):
                d = (src_k[j] >> shift) & 2047
                e = hist[c, d]
                hist[c, d] = e + 1
                dst_k[e] = src_k[j]
                dst_i[e] = src_i[j]
        src_k, dst_k = dst_k, src_k
        src_i, dst_i = dst_i, src_i
    return src_i
