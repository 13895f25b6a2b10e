"""antimatter15 ``.splat``: 32-byte records of position f32x3, linear scale f32x3, RGBA u8x4
(colour and linear opacity) and rotation u8x4 ((q * 128) + 128, order w, x, y, z)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ovseg_core.errors import SceneFormatError, UsageError
from ovseg_core.io.finite_rows import finite_rows
from ovseg_core.io.ply_table import read_regular_file
from ovseg_core.scene import SH_C0, GaussianScene

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def read_splat(path: str | os.PathLike[str]) -> GaussianScene:
    path = Path(path)
    raw = read_regular_file(path)
    if len(raw) == 0:
        raise SceneFormatError(f"{path}: the .splat file holds zero Gaussians")
    if len(raw) % RECORD.itemsize:
        raise SceneFormatError(
            f"{path}: size {len(raw)} bytes is not a multiple of the 32-byte .splat record (truncated file?)"
        )
    rec = np.frombuffer(raw, dtype=RECORD)
    with np.errstate(all="ignore"):  # non-positive or non-finite scales give NaN/-Inf log-scales, dropped below
        rgba = rec["rgba"].astype(np.float64) / 255.0
        alpha = np.clip(rgba[:, 3], 1e-6, 1 - 1e-6)
        quats = (rec["rot"].astype(np.float64) - 128.0) / 128.0
        norm = np.linalg.norm(quats, axis=1, keepdims=True)
        quats = np.where(norm > 0, quats / np.maximum(norm, 1e-12), np.array([1.0, 0, 0, 0]))
        scale = rec["scale"].astype(np.float64)
        columns = {
            "means": rec["position"].astype(np.float32),
            "quats": quats.astype(np.float32),
            "log_scales": np.where(scale > 0, np.log(scale), np.nan).astype(np.float32),
            "logit_opacities": np.log(alpha / (1 - alpha)).astype(np.float32),
            "sh0": ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :].astype(np.float32),
            "shN": np.zeros((len(rec), 0, 3), np.float32),
        }
    keep = finite_rows(columns, path, len(rec))
    if keep is not None:
        columns = {k: v[keep] for k, v in columns.items()}
    return GaussianScene(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in columns.items()})


def write_splat(scene: GaussianScene) -> bytes:
    """Encode as ``.splat`` (degree-0 colour only; lossy: 8-bit colour, opacity and rotation)."""
    if scene.num_channels != 3:
        raise UsageError(f".splat stores RGB; the scene has {scene.num_channels} channels")
    rec = np.zeros(scene.num_gaussians, dtype=RECORD)
    rec["position"] = scene.means.detach().cpu().numpy()
    rec["scale"] = scene.scales.detach().cpu().numpy()
    rgb = scene.base_colors.detach().cpu().numpy()
    alpha = scene.opacities.detach().cpu().numpy()[:, None]
    rec["rgba"] = np.clip(np.round(np.concatenate([rgb, alpha], 1) * 255), 0, 255).astype(np.uint8)
    rec["rot"] = np.clip(np.round(scene.quats.detach().cpu().numpy() * 128 + 128), 0, 255).astype(np.uint8)
    return rec.tobytes()
