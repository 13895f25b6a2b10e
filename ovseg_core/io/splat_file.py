"""antimatter15 ``.splat``: 32-byte records of position f32x3, linear scale f32x3, RGBA u8x4
(colour and linear opacity) and rotation u8x4 ((q * 128) + 128, order w, x, y, z)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ovseg_core.errors import SceneFormatError
from ovseg_core.scene import SH_C0, GaussianScene

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def read_splat(path: str | os.PathLike[str]) -> GaussianScene:
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) == 0:
        raise SceneFormatError(f"{path}: the .splat file holds zero Gaussians")
    if len(raw) % RECORD.itemsize:
        raise SceneFormatError(
            f"{path}: size {len(raw)} bytes is not a multiple of the 32-byte .splat record (truncated file?)"
        )
    rec = np.frombuffer(raw, dtype=RECORD)
    scale = rec["scale"].astype(np.float64)
    finite = np.isfinite(rec["position"]).all(1) & np.isfinite(scale).all(1) & (scale > 0).all(1)
    if not finite.all():
        import warnings

        if not finite.any():
            raise SceneFormatError(f"{path}: no Gaussian has finite position and positive scale")
        warnings.warn(
            f"{path}: dropped {int((~finite).sum())} of {len(rec)} records with NaN/Inf or non-positive scale",
            stacklevel=2,
        )
        rec, scale = rec[finite], scale[finite]
    rgba = rec["rgba"].astype(np.float64) / 255.0
    alpha = np.clip(rgba[:, 3], 1e-6, 1 - 1e-6)
    quats = (rec["rot"].astype(np.float64) - 128.0) / 128.0
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    quats = np.where(norm > 0, quats / np.maximum(norm, 1e-12), np.array([1.0, 0, 0, 0]))
    f32 = lambda arr: torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))  # noqa: E731
    return GaussianScene(
        means=f32(rec["position"]),
        quats=f32(quats),
        log_scales=f32(np.log(scale)),
        logit_opacities=f32(np.log(alpha / (1 - alpha))),
        sh0=f32(((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]),
        shN=f32(np.zeros((len(rec), 0, 3))),
    )


def write_splat(scene: GaussianScene) -> bytes:
    """Encode as ``.splat`` (degree-0 colour only; lossy: 8-bit colour, opacity and rotation)."""
    if scene.num_channels != 3:
        raise ValueError(f".splat stores RGB; the scene has {scene.num_channels} channels")
    rec = np.zeros(scene.num_gaussians, dtype=RECORD)
    rec["position"] = scene.means.detach().cpu().numpy()
    rec["scale"] = scene.scales.detach().cpu().numpy()
    rgb = scene.base_colors.detach().cpu().numpy()
    alpha = scene.opacities.detach().cpu().numpy()[:, None]
    rec["rgba"] = np.clip(np.round(np.concatenate([rgb, alpha], 1) * 255), 0, 255).astype(np.uint8)
    rec["rot"] = np.clip(np.round(scene.quats.detach().cpu().numpy() * 128 + 128), 0, 255).astype(np.uint8)
    return rec.tobytes()
