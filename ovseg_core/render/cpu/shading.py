"""Colour stage: spherical-harmonics colours of the visible Gaussians into their records."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ovseg_core.render.cpu.numerics import F0, F1, F2, F3, F4, HALF
from ovseg_core.render.cpu.records import COL

_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2_0, _C2_1, _C2_2, _C2_3, _C2_4 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
_C3_0, _C3_1, _C3_2, _C3_3 = -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154
_C3_4, _C3_5, _C3_6 = -0.4570457994644658, 1.445305721320277, -0.5900435899266435

_F_C0, _F_C1 = np.float32(_C0), np.float32(_C1)
_F_C2 = tuple(np.float32(c) for c in (_C2_0, _C2_1, _C2_2, _C2_3, _C2_4))
_F_C3 = tuple(np.float32(c) for c in (_C3_0, _C3_1, _C3_2, _C3_3, _C3_4, _C3_5, _C3_6))


@njit(inline="always", fastmath=True)
def _sh_basis(dx, dy, dz):
    """The 15 real SH basis values of bands 1-3 for the unit direction (dx, dy, dz), in float32."""
    xx, yy, zz = dx * dx, dy * dy, dz * dz
    xy, yz, xz = dx * dy, dy * dz, dx * dz
    return (
        -_F_C1 * dy, _F_C1 * dz, -_F_C1 * dx,
        _F_C2[0] * xy, _F_C2[1] * yz, _F_C2[2] * (F2 * zz - xx - yy), _F_C2[3] * xz, _F_C2[4] * (xx - yy),
        _F_C3[0] * dy * (F3 * xx - yy), _F_C3[1] * xy * dz, _F_C3[2] * dy * (F4 * zz - xx - yy),
        _F_C3[3] * dz * (F2 * zz - F3 * xx - F3 * yy), _F_C3[4] * dx * (F4 * zz - xx - yy),
        _F_C3[5] * dz * (xx - yy), _F_C3[6] * dx * (xx - F3 * yy),
    )  # fmt: skip


@njit(parallel=True, cache=True, fastmath=True)
def sh_colors(ids, means, sh0, shN, degree, cam_pos, rec):
    """SH colour C0 sh0 + higher bands + 0.5 into ``rec[:, COL:]``, for the Gaussians ``ids`` only
    (those that survived culling; ascending ids read the coefficients front to back: the same reads
    in depth order cost several times more).

    float32 throughout, as the torch reference: float64 constants made it twice as slow. RGB at degree
    3 (what real captures carry) has its own unrolled loop, a third faster than the general one.
    """
    n_ch = sh0.shape[2]
    px, py, pz = np.float32(cam_pos[0]), np.float32(cam_pos[1]), np.float32(cam_pos[2])
    rgb3 = n_ch == 3 and degree == 3
    for j in prange(ids.shape[0]):
        i = ids[j]
        if degree < 1:
            for ch in range(n_ch):
                rec[i, COL + ch] = _F_C0 * sh0[i, 0, ch] + HALF
            continue
        dx, dy, dz = means[i, 0] - px, means[i, 1] - py, means[i, 2] - pz
        dn = math.sqrt(dx * dx + dy * dy + dz * dz)
        inv = F1 / dn if dn > F0 else F1
        b = _sh_basis(dx * inv, dy * inv, dz * inv)
        if rgb3:
            for ch in range(3):
                col = _F_C0 * sh0[i, 0, ch] + HALF
                col += b[0] * shN[i, 0, ch] + b[1] * shN[i, 1, ch] + b[2] * shN[i, 2, ch]
                col += b[3] * shN[i, 3, ch] + b[4] * shN[i, 4, ch] + b[5] * shN[i, 5, ch]
                col += b[6] * shN[i, 6, ch] + b[7] * shN[i, 7, ch] + b[8] * shN[i, 8, ch]
                col += b[9] * shN[i, 9, ch] + b[10] * shN[i, 10, ch] + b[11] * shN[i, 11, ch]
                col += b[12] * shN[i, 12, ch] + b[13] * shN[i, 13, ch] + b[14] * shN[i, 14, ch]
                rec[i, COL + ch] = col
            continue
        n_basis = (degree + 1) * (degree + 1) - 1
        for ch in range(n_ch):
            col = _F_C0 * sh0[i, 0, ch] + HALF
            for q in range(n_basis):
                col += b[q] * shN[i, q, ch]
            rec[i, COL + ch] = col
