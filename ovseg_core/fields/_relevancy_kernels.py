"""Numba kernels for per-Gaussian relevancy in factored (codebook) form."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True, fastmath=True)
def gaussian_norms(idx, val, gram):
    """|f_i| for f_i = sum_j val[i, j] basis[idx[i, j]], from the basis Gram matrix ``gram`` [E, E]."""
    N, J = idx.shape
    out = np.empty(N, np.float32)
    for i in nb.prange(N):
        acc = 0.0
        for a in range(J):
            va = val[i, a]
            ia = idx[i, a]
            for b in range(J):
                acc += va * val[i, b] * gram[ia, idx[i, b]]
        out[i] = np.sqrt(max(acc, 0.0))
    return out


@nb.njit(parallel=True, cache=True, fastmath=True)
def relevancy(idx, val, table, temperature):
    """LERF relevancy of each Gaussian for the positive query in column 0 of ``table`` [E, Q]
    (basis @ text embeddings) against negatives in columns 1..Q-1:
    min over negatives of softmax(T * [s_pos, s_neg])[0] = sigmoid(T * (s_pos - max s_neg)).
    ``val`` must already be divided by each Gaussian's feature norm (so s are cosines).
    float32 throughout: this is memory- and exp-bound at millions of Gaussians."""
    N, J = idx.shape
    Q = table.shape[1]
    out = np.empty(N, np.float32)
    t = np.float32(temperature)
    for i in nb.prange(N):
        s_pos = np.float32(0.0)
        for j in range(J):
            s_pos += val[i, j] * table[idx[i, j], 0]
        if Q == 1:
            out[i] = s_pos
            continue
        s_neg = np.float32(-1e30)
        for q in range(1, Q):
            s = np.float32(0.0)
            for j in range(J):
                s += val[i, j] * table[idx[i, j], q]
            s_neg = max(s_neg, s)
        out[i] = np.float32(1.0) / (np.float32(1.0) + np.exp(t * (s_neg - s_pos)))
    return out
