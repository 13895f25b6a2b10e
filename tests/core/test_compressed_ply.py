"""SuperSplat compressed PLY decoding, checked with an encoder written from the format description."""

from __future__ import annotations

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from ovseg_core.io import load_scene
from ovseg_core.synthetic import random_scene


def _pack_unorm(t, bits):
    return np.round(np.clip(t, 0, 1) * ((1 << bits) - 1)).astype(np.uint32)


def _pack_111011(t):
    return (_pack_unorm(t[:, 0], 11) << 21) | (_pack_unorm(t[:, 1], 10) << 11) | _pack_unorm(t[:, 2], 11)


def encode_compressed(scene, with_sh=True):
    n = scene.num_gaussians
    chunks = (n + 255) // 256
    means, logs = scene.means.numpy().astype(np.float64), scene.log_scales.numpy().astype(np.float64)
    cdt = [(f"{m}_{a}", "f4") for m in ("min", "max") for a in "xyz"] + [
        (f"{m}_scale_{a}", "f4") for m in ("min", "max") for a in "xyz"
    ]
    chunk = np.zeros(chunks, dtype=cdt)
    pos_t, sc_t = np.zeros((n, 3)), np.zeros((n, 3))
    for c in range(chunks):
        sl = slice(c * 256, min(n, (c + 1) * 256))
        for i, a in enumerate("xyz"):
            lo, hi = means[sl, i].min(), means[sl, i].max()
            chunk[c][f"min_{a}"], chunk[c][f"max_{a}"] = lo, hi
            pos_t[sl, i] = (means[sl, i] - lo) / max(hi - lo, 1e-12)
            lo, hi = logs[sl, i].min(), logs[sl, i].max()
            chunk[c][f"min_scale_{a}"], chunk[c][f"max_scale_{a}"] = lo, hi
            sc_t[sl, i] = (logs[sl, i] - lo) / max(hi - lo, 1e-12)
    q = scene.quats.numpy().astype(np.float64)  # w x y z
    xyzw = np.c_[q[:, 1], q[:, 2], q[:, 3], q[:, 0]]
    # PlayCanvas' largest index: 0 = w, 1 = x, 2 = y, 3 = z
    order_map = {0: (3, [0, 1, 2]), 1: (0, [3, 1, 2]), 2: (1, [3, 0, 2]), 3: (2, [3, 0, 1])}
    rot = np.zeros(n, np.uint32)
    for i in range(n):
        cand = np.abs(xyzw[i])
        largest_comp = int(np.argmax(cand))
        largest = {3: 0, 0: 1, 1: 2, 2: 3}[largest_comp]
        big, rest = order_map[largest]
        v = xyzw[i] * (1 if xyzw[i, big] >= 0 else -1)
        comps = v[rest] * (np.sqrt(2) * 0.5) + 0.5
        rot[i] = (
            (np.uint32(largest) << 30)
            | (_pack_unorm(comps[0], 10) << 20)
            | (_pack_unorm(comps[1], 10) << 10)
            | _pack_unorm(comps[2], 10)
        )
    rgb = scene.base_colors.numpy().astype(np.float64)
    alpha = scene.opacities.numpy().astype(np.float64)
    colour = (
        (_pack_unorm(rgb[:, 0], 8) << 24)
        | (_pack_unorm(rgb[:, 1], 8) << 16)
        | (_pack_unorm(rgb[:, 2], 8) << 8)
        | _pack_unorm(alpha, 8)
    )
    vertex = np.zeros(
        n, dtype=[("packed_position", "u4"), ("packed_rotation", "u4"), ("packed_scale", "u4"), ("packed_color", "u4")]
    )
    vertex["packed_position"], vertex["packed_rotation"] = _pack_111011(pos_t), rot
    vertex["packed_scale"], vertex["packed_color"] = _pack_111011(sc_t), colour
    elements = [PlyElement.describe(chunk, "chunk"), PlyElement.describe(vertex, "vertex")]
    if with_sh:
        k = scene.shN.shape[1]
        flat = scene.shN.numpy().transpose(0, 2, 1).reshape(n, -1)
        sh = np.zeros(n, dtype=[(f"f_rest_{i}", "u1") for i in range(3 * k)])
        for i in range(3 * k):
            sh[f"f_rest_{i}"] = np.clip(np.round((flat[:, i] + 4) * 255 / 8), 0, 255)
        elements.append(PlyElement.describe(sh, "sh"))
    return PlyData(elements)


def test_compressed_ply_decodes_within_quantisation(tmp_path):
    scene = random_scene(700, sh_degree=1, seed=5)
    scene.quats[:, 0] = torch.where(scene.quats[:, 0] < 0, -scene.quats[:, 0], scene.quats[:, 0])
    path = tmp_path / "scene.compressed.ply"
    encode_compressed(scene).write(str(path))
    back = load_scene(path)
    assert back.num_gaussians == 700 and back.sh_degree == 1
    extent = scene.means.max(0).values - scene.means.min(0).values
    assert ((back.means - scene.means).abs() <= extent / 1000 + 1e-6).all()
    assert ((back.log_scales - scene.log_scales).abs() < 0.01).all()
    dots = (back.quats * scene.quats).sum(1).abs()
    assert dots.min() > 0.999
    assert ((back.base_colors - scene.base_colors.clamp(0, 1)).abs() < 3 / 255).all()
    assert ((back.opacities - scene.opacities).abs() < 3 / 255).all()
    assert ((back.shN - scene.shN.clamp(-4, 4)).abs() < 8 / 255).all()
