"""Numba kernels that blend sparse per-Gaussian codes into pixels through fixed contributions
(the CPU fast path; ``_blend_torch`` is the device-agnostic twin).

A view's contributions are a CSR matrix W [P, U] (pixel p gets weight w from Gaussian u); each
Gaussian's code has only J = L*k non-zeros (entry ``idx[u, j]`` with weight ``val[u, j]``), so a
pixel code costs J scatter-adds per contribution instead of L*S multiply-adds of a dense render.
Weights are stored as float16, which numba cannot load: the kernels take their bits (``uint16``)
and widen them exactly to float32 (``_half``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

# 2^(e - 25) for the 5-bit float16 exponent e >= 1 (e = 0, subnormal, uses 2^-24 = 2^(1 - 25)).
_HALF_SCALE = np.array([2.0 ** (max(e, 1) - 25) for e in range(32)], np.float32)


@nb.njit(inline="always", cache=True)
def _half(bits, scale):
    """float16 bit pattern -> float32 (exact for finite values)."""
    e = (bits >> 10) & 0x1F
    m = bits & 0x3FF
    v = np.float32(m + (1024 if e > 0 else 0)) * scale[e]
    return -v if bits & 0x8000 else v


@nb.njit(parallel=True, cache=True)
def _blend(row_ptr, cols, weight_bits, idx, val, width, scale):
    P = row_ptr.shape[0] - 1
    J = idx.shape[1]
    out = np.zeros((P, width), np.float32)
    for p in nb.prange(P):
        for e in range(row_ptr[p], row_ptr[p + 1]):
            u = cols[e]
            w = _half(weight_bits[e], scale)
            for j in range(J):
                out[p, idx[u, j]] += w * val[u, j]
    return out


@nb.njit(parallel=True, cache=True)
def _blend_backward(row_ptr, cols, weight_bits, idx, grad_out, num_cols, num_chunks, scale):
    P = row_ptr.shape[0] - 1
    J = idx.shape[1]
    # Rows split into chunks, each summing into its own [U, J] buffer: race-free without the
    # transposed (per-Gaussian) layout, at num_chunks * U * J * 4 bytes of scratch.
    part = np.zeros((num_chunks, num_cols, J), np.float32)
    step = (P + num_chunks - 1) // num_chunks
    for c in nb.prange(num_chunks):
        for p in range(c * step, min(P, (c + 1) * step)):
            for e in range(row_ptr[p], row_ptr[p + 1]):
                u = cols[e]
                w = _half(weight_bits[e], scale)
                for j in range(J):
                    part[c, u, j] += w * grad_out[p, idx[u, j]]
    grad_val = np.zeros((num_cols, J), np.float32)
    for c in range(num_chunks):
        grad_val += part[c]
    return grad_val


def blend_codes(row_ptr, cols, weights, idx, val, width):  # noqa: ANN001, ANN201
    """Pixel codes ``[P, width]`` float32 = W @ dense(idx, val). ``weights`` [E] float16,
    ``idx`` [U, J] int32, ``val`` [U, J] float32."""
    return _blend(row_ptr, cols, weights.view(np.uint16), idx, val, width, _HALF_SCALE)


def blend_codes_backward(row_ptr, cols, weights, idx, grad_out, num_cols, scratch_bytes=256 << 20):  # noqa: ANN001, ANN201
    """Gradient of the code weights ``[U, J]`` given the pixel-code gradient ``[P, width]``.
    Uses up to one row chunk per numba thread, fewer when their buffers would pass ``scratch_bytes``."""
    per_chunk = max(num_cols * idx.shape[1] * 4, 1)
    chunks = max(1, min(nb.get_num_threads(), scratch_bytes // per_chunk, row_ptr.shape[0] - 1))
    return _blend_backward(row_ptr, cols, weights.view(np.uint16), idx, grad_out, num_cols, chunks, _HALF_SCALE)
