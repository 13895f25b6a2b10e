"""SuperSplat / PlayCanvas compressed PLY: 256-Gaussian chunks with quantised, packed attributes.

Layout: element ``chunk`` (per-chunk min/max of position and log-scale, optionally of
colour), element ``vertex`` with four packed uint32 (position 11/10/11 bits, rotation as the
index of the largest component plus three 10-bit components scaled by sqrt(2), log-scale
11/10/11, colour RGBA8888 with linear opacity) and an optional ``sh`` element of uint8
``f_rest_*`` (value = q * 8/255 - 4). Decoding follows PlayCanvas'
``gsplat-compressed-data.js``.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ovseg_core.errors import SceneFormatError
from ovseg_core.io.finite_rows import finite_rows
from ovseg_core.io.ply_table import PlyTable
from ovseg_core.scene import SH_C0, GaussianScene

CHUNK_SIZE = 256
_CHUNK_REQUIRED = [f"{m}_{a}" for m in ("min", "max") for a in "xyz"] + [
    f"{m}_scale_{a}" for m in ("min", "max") for a in "xyz"
]
_VERTEX_REQUIRED = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
_F_REST = re.compile(r"^f_rest_(\d+)$")


def is_compressed_ply(ply: PlyTable) -> bool:
    return "chunk" in ply.elements


def _unorm(value: np.ndarray, bits: int) -> np.ndarray:
    mask = (1 << bits) - 1
    return (value & mask).astype(np.float64) / mask


def _unpack_111011(v: np.ndarray) -> np.ndarray:
    return np.stack([_unorm(v >> 21, 11), _unorm(v >> 11, 10), _unorm(v, 11)], axis=1)


def _lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    return lo * (1 - t) + hi * t


def decode_compressed_ply(ply: PlyTable, path: str) -> GaussianScene:
    """Decode a compressed PLY already parsed by ``read_ply_table``."""
    with np.errstate(all="ignore"):  # NaN/Inf chunk bounds give non-finite rows, dropped at the end
        return _decode(ply, path)


def _decode(ply: PlyTable, path: str) -> GaussianScene:
    names = list(ply.elements)
    if "vertex" not in names:
        raise SceneFormatError(f"{path}: compressed PLY has a 'chunk' element but no 'vertex' element")
    cdata, vdata = ply.elements["chunk"], ply.elements["vertex"]
    cprops, vprops = ply.properties("chunk"), ply.properties("vertex")
    missing = [p for p in _CHUNK_REQUIRED if p not in cprops] + [p for p in _VERTEX_REQUIRED if p not in vprops]
    if missing:
        raise SceneFormatError(f"{path}: compressed PLY is missing required properties {missing}")
    not_integer = [p for p in _VERTEX_REQUIRED if vdata.dtype[p].kind not in "ui"]
    if not_integer:
        raise SceneFormatError(f"{path}: compressed PLY packed properties {not_integer} must be integers")
    n = len(vdata)
    if n == 0:
        raise SceneFormatError(f"{path}: the PLY holds zero Gaussians")
    num_chunks = (n + CHUNK_SIZE - 1) // CHUNK_SIZE
    if len(cdata) < num_chunks:
        raise SceneFormatError(f"{path}: {n} Gaussians need {num_chunks} chunks, file has {len(cdata)}")
    owner = np.arange(n) // CHUNK_SIZE
    col = lambda name: np.asarray(cdata[name], np.float64)[owner]  # noqa: E731
    u32 = lambda name: np.asarray(vdata[name]).astype(np.uint32)  # noqa: E731

    t = _unpack_111011(u32("packed_position"))
    means = np.stack([_lerp(col(f"min_{a}"), col(f"max_{a}"), t[:, i]) for i, a in enumerate("xyz")], axis=1)
    t = _unpack_111011(u32("packed_scale"))
    log_scales = np.stack(
        [_lerp(col(f"min_scale_{a}"), col(f"max_scale_{a}"), t[:, i]) for i, a in enumerate("xyz")], axis=1
    )

    rot = u32("packed_rotation")
    norm = 1.0 / (np.sqrt(2) * 0.5)
    a = (_unorm(rot >> 20, 10) - 0.5) * norm
    b = (_unorm(rot >> 10, 10) - 0.5) * norm
    c = (_unorm(rot, 10) - 0.5) * norm
    m = np.sqrt(np.clip(1.0 - (a * a + b * b + c * c), 0.0, None))
    largest = rot >> 30
    # PlayCanvas (x, y, z, w) per largest index: 0 -> (a,b,c,m), 1 -> (m,b,c,a), 2 -> (b,m,c,a), 3 -> (b,c,m,a)
    x = np.select([largest == 0, largest == 1], [a, m], b)
    y = np.select([largest == 0, largest == 1, largest == 2], [b, b, m], c)
    z = np.select([largest == 3], [m], c)
    w = np.where(largest == 0, m, a)
    quats = np.stack([w, x, y, z], axis=1)
    quats /= np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)

    colour = u32("packed_color")
    rgba = np.stack([_unorm(colour >> 24, 8), _unorm(colour >> 16, 8), _unorm(colour >> 8, 8), _unorm(colour, 8)], 1)
    if all(f"{mm}_{ch}" in cprops for mm in ("min", "max") for ch in "rgb"):
        for i, ch in enumerate("rgb"):
            rgba[:, i] = _lerp(col(f"min_{ch}"), col(f"max_{ch}"), rgba[:, i])
    sh0 = ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]
    alpha = rgba[:, 3]
    with np.errstate(divide="ignore"):
        logit = np.where(alpha <= 0, -40.0, np.where(alpha >= 1, 40.0, -np.log(1.0 / np.clip(alpha, 1e-12, 1) - 1.0)))

    shN = np.zeros((n, 0, 3))
    if "sh" in names:
        sh, sh_props = ply.elements["sh"], ply.properties("sh")
        rest = sorted(int(m.group(1)) for p in sh_props if (m := _F_REST.match(p)))
        k = len(rest) // 3
        if len(sh) != n or len(rest) % 3 or k not in (3, 8, 15) or rest != list(range(len(rest))):
            raise SceneFormatError(f"{path}: 'sh' element has {len(sh)} rows and f_rest properties {rest[:50]}")
        q = np.stack([np.asarray(sh[f"f_rest_{i}"], np.float64) for i in range(len(rest))], axis=1)
        shN = (q * (8.0 / 255.0) - 4.0).reshape(n, 3, k).transpose(0, 2, 1)

    columns = {
        "means": means.astype(np.float32), "quats": quats.astype(np.float32),
        "log_scales": log_scales.astype(np.float32), "logit_opacities": logit.astype(np.float32),
        "sh0": sh0.astype(np.float32), "shN": shN.astype(np.float32),
    }  # fmt: skip
    keep = finite_rows(columns, path, n)
    if keep is not None:
        columns = {k: v[keep] for k, v in columns.items()}
    f32 = lambda arr: torch.from_numpy(np.ascontiguousarray(arr))  # noqa: E731
    return GaussianScene(**{k: f32(v) for k, v in columns.items()})
