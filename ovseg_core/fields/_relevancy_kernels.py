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


@nb.njit(parallel=True, cache=True, fastmath=True)
def max_scores(idx, val, table):
    """``[N]`` max over the columns of ``table`` [E, Q] of each Gaussian's score sum_j val[i, j]
    table[idx[i, j], q]: the best negative, computed once per negative set (they rarely change)."""
    N, J = idx.shape
    Q = table.shape[1]
    out = np.empty(N, np.float32)
    for i in nb.prange(N):
        best = np.float32(-1e30)
        for q in range(Q):
            s = np.float32(0.0)
            for j in range(J):
                s += val[i, j] * table[idx[i, j], q]
            best = max(best, s)
        out[i] = best
    return out


CHUNKS = 32
"""Per-prompt kernels hand their loop out in this many chunks, each to whichever thread is free
(``numba.parallel_chunksize``): with one chunk per thread, a thread that a busy machine parks for
a time slice held the whole query back."""


def _balanced(n: int):  # noqa: ANN202
    return nb.parallel_chunksize(max(n // CHUNKS, 1))


def positive_scores(idx, val, column):  # noqa: ANN001, ANN201
    """``[N]`` score sum_j val[i, j] column[idx[i, j]] of each Gaussian from the per-entry text
    scores ``column`` [E]: J gathers per Gaussian (a cosine when ``val`` is unit-scaled)."""
    with _balanced(len(idx)):
        return _positive_scores(idx, val, column)


@nb.njit(parallel=True, cache=True, fastmath=True)
def _positive_scores(idx, val, column):
    N, J = idx.shape
    out = np.empty(N, np.float32)
    for i in nb.prange(N):
        s = np.float32(0.0)
        for j in range(J):
            s += val[i, j] * column[idx[i, j]]
        out[i] = s
    return out


UNSEEN_NEGATIVE = np.float32(1e30)
"""A best-negative score that no positive beats: ``relevancy_against`` gives exactly 0 there (Gaussians
without a feature). Finite, so fastmath's no-infinities assumption holds inside the kernels."""


@nb.njit(parallel=True, cache=True, fastmath=True)
def _logits_against(idx, val, column, best_negative, temperature, out):
    t = np.float32(temperature)
    for i in nb.prange(idx.shape[0]):
        s = np.float32(0.0)
        for j in range(idx.shape[1]):
            s += val[i, j] * column[idx[i, j]]
        out[i] = min(t * (best_negative[i] - s), UNSEEN_NEGATIVE)
    return out


def relevancy_against(idx, val, column, best_negative, temperature):  # noqa: ANN001, ANN201
    """``[N]`` sigmoid(T * (s_pos - best_negative)), s_pos as in ``positive_scores`` and
    ``best_negative`` [N] from ``max_scores`` (``UNSEEN_NEGATIVE`` where a Gaussian has no feature:
    relevancy exactly 0): a fifth of ``relevancy``'s work with four negatives. One pass over the
    codes gives T * (best_negative - s_pos); numpy's SIMD exp finishes the sigmoid (numba's exp is a
    scalar libm call without SVML: it was a third of a query), and overflow to inf gives exactly 0."""
    with _balanced(len(idx)):
        out = _logits_against(idx, val, column, best_negative, np.float32(temperature), np.empty(len(idx), np.float32))
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += np.float32(1.0)
    return np.reciprocal(out, out=out)


def relevancy_reference(idx, val, table, temperature):  # noqa: ANN001, ANN201
    """Plain-numpy twin of ``relevancy`` / ``max_scores`` + ``relevancy_against`` (column 0 positive)."""
    s = (val[:, :, None].astype(np.float64) * table[idx.astype(np.int64)]).sum(1)  # [N, Q]
    if s.shape[1] == 1:
        return s[:, 0].astype(np.float32)
    with np.errstate(over="ignore"):  # exp overflowing to inf is a relevancy of exactly 0, as in the kernel
        return (1.0 / (1.0 + np.exp(temperature * (s[:, 1:].max(1) - s[:, 0])))).astype(np.float32)
