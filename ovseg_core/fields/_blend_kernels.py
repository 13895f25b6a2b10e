"""Numba kernels that blend sparse per-Gaussian codes into pixels through fixed contributions.

A view's contributions are a CSR matrix W [P, U] (pixel p gets weight w from Gaussian u); each
Gaussian's code has only J = L*k non-zeros (entry ``idx[u, j]`` with weight ``val[u, j]``), so a
pixel code costs J scatter-adds per contribution instead of L*S multiply-adds of a dense render.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True)
def blend_codes(row_ptr, cols, weights, idx, val, width):
    """Pixel codes ``[P, width]`` = W @ dense(idx, val)."""
    P = row_ptr.shape[0] - 1
    J = idx.shape[1]
    out = np.zeros((P, width), np.float32)
    for p in nb.prange(P):
        for e in range(row_ptr[p], row_ptr[p + 1]):
            u = cols[e]
            w = weights[e]
            for j in range(J):
                out[p, idx[u, j]] += w * val[u, j]
    return out


@nb.njit(parallel=True, cache=True)
def blend_codes_backward(col_ptr, rows, weights_t, idx, grad_out):
    """Gradient of the code weights ``[U, J]`` given the pixel-code gradient ``[P, width]``,
    walking W^T (CSC order) so each Gaussian is owned by one thread."""
    U = col_ptr.shape[0] - 1
    J = idx.shape[1]
    grad_val = np.zeros((U, J), np.float32)
    for u in nb.prange(U):
        for e in range(col_ptr[u], col_ptr[u + 1]):
            p = rows[e]
            w = weights_t[e]
            for j in range(J):
                grad_val[u, j] += w * grad_out[p, idx[u, j]]
    return grad_val
