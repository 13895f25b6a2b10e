"""Colour high-dimensional feature images by their first three principal components."""

from __future__ import annotations

import numpy as np
import torch


def pca_colors(features: torch.Tensor, valid: torch.Tensor | None = None) -> np.ndarray:
    """``features`` [H, W, D] -> uint8 [H, W, 3]: projections on the top-3 principal axes, each
    stretched between its 1st and 99th percentile (robust to a few outliers)."""
    H, W, D = features.shape
    flat = features.detach().reshape(-1, D).float()
    mask = flat.norm(dim=1) > 1e-8 if valid is None else valid.reshape(-1)
    out = np.zeros((H * W, 3), np.uint8)
    if int(mask.sum()) < 3:
        return out.reshape(H, W, 3)
    x = flat[mask]
    x = x - x.mean(dim=0)
    q = min(3, D, x.shape[0])
    _, _, v = torch.pca_lowrank(x, q=q, center=False)
    proj = x @ v[:, :q]
    lo = torch.quantile(proj, 0.01, dim=0)
    hi = torch.quantile(proj, 0.99, dim=0)
    scaled = ((proj - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    rgb = np.zeros((x.shape[0], 3), np.float32)
    rgb[:, :q] = scaled.numpy()
    out[mask.numpy()] = (rgb * 255 + 0.5).astype(np.uint8)
    return out.reshape(H, W, 3)
