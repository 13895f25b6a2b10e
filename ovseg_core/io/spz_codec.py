"""SPZ attribute columns: quantised bytes <-> float arrays (Niantic ``nianticlabs/spz``, versions 2-4).

Per Gaussian, in column blocks: position as three 24-bit signed fixed-point numbers (``fractional_bits``
after the point), alpha u8 = sigmoid(opacity) * 255, colour u8 = f_dc * 0.15 * 255 + 127.5, log-scale
u8 = (log s + 10) * 16, rotation (version 2: x, y, z as u8 = q * 127.5 + 127.5 with w >= 0 derived;
version 3+: "smallest three", a u32 with the index of the largest component in the top two bits and the
other three as sign + 9-bit magnitude / sqrt(1/2)), then the SH rest as u8 = value * 128 + 128,
coefficient-major with RGB innermost (ovseg's ``shN`` layout). Values are the file's raw axes: no
coordinate conversion (see spz_file.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

COLOR_SCALE = 0.15
"""SPZ stores f_dc * 0.15 (not SH_C0) so colours somewhat outside [0, 1] survive."""
SH1_BUCKET, SH_REST_BUCKET = 8, 16
"""SH quantisation buckets of the reference packer (5 bits for band 1, 4 for higher bands, out of 8):
coarser values gzip better, and readers need not know."""
_SQRT1_2 = np.sqrt(0.5)
_ALPHA_EPS = 1e-6
"""Alpha 0 or 255 decodes to a logit at +-13.8, as splat-transform does, not to +-inf."""
# For each largest-component index, the other three in the order their 10-bit fields sit from bit 0 up.
_SMALLEST_THREE_SLOTS = np.array([[3, 2, 1], [3, 2, 0], [3, 1, 0], [2, 1, 0]])


@dataclasses.dataclass
class SpzColumns:
    """The byte blocks of one SPZ payload (each ``[N, k]`` uint8, in file order)."""

    positions: np.ndarray
    """``[N, 9]``: x, y, z as little-endian 24-bit signed fixed point."""
    alphas: np.ndarray
    """``[N, 1]``."""
    colors: np.ndarray
    """``[N, 3]``."""
    scales: np.ndarray
    """``[N, 3]``."""
    rotations: np.ndarray
    """``[N, 3]`` (version 2) or ``[N, 4]`` (version 3+, a little-endian u32)."""
    sh: np.ndarray
    """``[N, 3 * K]`` with K = 0, 3, 8 or 15 coefficients per channel."""

    def blocks(self) -> list[np.ndarray]:
        return [self.positions, self.alphas, self.colors, self.scales, self.rotations, self.sh]


def block_widths(version: int, sh_coeffs: int) -> list[int]:
    """Bytes per Gaussian of each block, in file order."""
    return [9, 1, 3, 3, 3 if version == 2 else 4, 3 * sh_coeffs]


def decode_columns(cols: SpzColumns, fractional_bits: int) -> dict[str, np.ndarray]:
    """Float columns as ``GaussianScene`` stores them (quaternions w, x, y, z, not yet normalised)."""
    n = len(cols.positions)
    b = cols.positions.reshape(n, 3, 3).astype(np.int32)
    fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)  # sign-extend 24 bits
    alpha = np.clip(cols.alphas[:, 0] / 255.0, _ALPHA_EPS, 1 - _ALPHA_EPS)
    if cols.rotations.shape[1] == 3:
        xyz = cols.rotations / 127.5 - 1.0
        w = np.sqrt(np.clip(1.0 - (xyz * xyz).sum(1), 0.0, None))
        quats = np.concatenate([w[:, None], xyz], axis=1)
    else:
        quats = _smallest_three(cols.rotations.copy().view("<u4")[:, 0])
    return {
        "means": (fixed * 2.0**-fractional_bits).astype(np.float32),
        "quats": quats.astype(np.float32),
        "log_scales": (cols.scales / 16.0 - 10.0).astype(np.float32),
        "logit_opacities": np.log(alpha / (1 - alpha)).astype(np.float32),
        "sh0": ((cols.colors / 255.0 - 0.5) / COLOR_SCALE)[:, None, :].astype(np.float32),
        "shN": ((cols.sh.astype(np.float32) - 128.0) / 128.0).reshape(n, -1, 3),
    }


def _smallest_three(comp: np.ndarray) -> np.ndarray:
    """``[N]`` u32 -> ``[N, 4]`` (w, x, y, z) float64."""
    largest = (comp >> 30).astype(np.intp)
    xyzw = np.zeros((len(comp), 4))
    rows = np.arange(len(comp))
    for field in range(3):
        bits = comp >> (10 * field)
        value = _SQRT1_2 * (bits & 511) / 511.0
        xyzw[rows, _SMALLEST_THREE_SLOTS[largest, field]] = np.where(bits & 512, -value, value)
    xyzw[rows, largest] = np.sqrt(np.clip(1.0 - (xyzw * xyzw).sum(1), 0.0, None))
    return xyzw[:, [3, 0, 1, 2]]


def encode_columns(
    means: np.ndarray,
    quats: np.ndarray,
    log_scales: np.ndarray,
    logit_opacities: np.ndarray,
    sh0: np.ndarray,
    shN: np.ndarray,
    *,
    version: int,
    fractional_bits: int,
) -> SpzColumns:
    """Quantise float columns (``GaussianScene`` layout, unit quaternions w, x, y, z) as the reference
    packer does: float32 arithmetic, halves rounded away from zero."""
    f32 = np.float32
    n = len(means)
    fixed = _round(means.astype(f32) * f32(2.0**fractional_bits)).astype(np.int64) & 0xFFFFFF
    positions = np.stack([(fixed >> s) & 0xFF for s in (0, 8, 16)], axis=-1).reshape(n, 9).astype(np.uint8)
    with np.errstate(over="ignore"):  # exp overflow is opacity 0, as in the reference
        alpha = f32(1) / (f32(1) + np.exp(-logit_opacities.astype(f32)))
    q = quats.astype(f32)[:, [1, 2, 3, 0]]  # x, y, z, w
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, f32(1)), np.array([0, 0, 0, 1], f32))  # zero: identity
    if version == 2:
        q = np.where(q[:, 3:] < 0, -q, q)
        rotations = _u8(q[:, :3] * f32(127.5) + f32(127.5))
    else:
        rotations = _pack_smallest_three(q).view(np.uint8).reshape(n, 4)
    sh = _round(shN.astype(f32).reshape(n, -1) * f32(128)).astype(np.int64) + 128
    bucket = np.full(sh.shape[1], SH_REST_BUCKET)
    bucket[:9] = SH1_BUCKET
    sh = (sh + bucket // 2) // bucket * bucket
    return SpzColumns(
        positions=positions,
        alphas=_u8(alpha * f32(255))[:, None],
        colors=_u8(sh0[:, 0, :].astype(f32) * (f32(COLOR_SCALE) * f32(255)) + f32(127.5)),
        scales=_u8((log_scales.astype(f32) + f32(10)) * f32(16)),
        rotations=rotations,
        sh=np.clip(sh, 0, 255).astype(np.uint8),
    )


def _round(values: np.ndarray) -> np.ndarray:
    """C's ``round``: halves away from zero (numpy's ``round`` takes them to even)."""
    return np.copysign(np.floor(np.abs(values) + 0.5), values)


def _u8(values: np.ndarray) -> np.ndarray:
    return np.clip(_round(values), 0, 255).astype(np.uint8)


def _pack_smallest_three(xyzw: np.ndarray) -> np.ndarray:
    """``[N, 4]`` unit (x, y, z, w) -> ``[N]`` little-endian u32."""
    largest = np.argmax(np.abs(xyzw), axis=1)
    negate = np.take_along_axis(xyzw, largest[:, None], 1)[:, 0] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):  # ascending, so the first component kept ends up in the highest field
        keep = largest != i
        sign = ((xyzw[:, i] < 0) ^ negate).astype(np.uint32)
        mag = np.minimum(np.float32(511) * (np.abs(xyzw[:, i]) / np.float32(_SQRT1_2)) + np.float32(0.5), 511)
        mag = mag.astype(np.uint32)  # truncation, as the reference's cast
        comp = np.where(keep, (comp << 10) | (sign << 9) | mag, comp)
    return comp.astype("<u4")
