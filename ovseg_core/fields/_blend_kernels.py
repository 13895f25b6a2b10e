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


@nb.njit(cache=True)
def transpose_csr(cols, weights, num_cols, num_rows_ptr):
    """Counting sort of CSR entries by column: (col_ptr [U+1], rows [E] int32, weights [E]) of W^T."""
    E = cols.shape[0]
    col_ptr = np.zeros(num_cols + 1, np.int64)
    for k in range(E):
        col_ptr[cols[k] + 1] += 1
    for u in range(num_cols):
        col_ptr[u + 1] += col_ptr[u]
    fill = col_ptr[:-1].copy()
    rows_t = np.empty(E, np.int32)
    weights_t = np.empty(E, np.float32)
    for p in range(num_rows_ptr.shape[0] - 1):
        for k in range(num_rows_ptr[p], num_rows_ptr[p + 1]):
            u = cols[k]
            rows_t[fill[u]] = p
            weights_t[fill[u]] = weights[k]
            fill[u] += 1
    return col_ptr, rows_t, weights_t
