"""A harder quality case: small objects side by side on a table, seen from low angles.

Built like a faint real capture where per-pixel answers go wrong though per-Gaussian ones hold:

- eight small objects (~0.07-0.1 across) in two rows on one near-planar table top, a few object
  widths apart, so a low camera sees them overlap and most of a view is the table;
- faint Gaussians (log-normal opacity, median ~0.09) so many blend per pixel, plus a few floaters;
- cameras in three rings 12, 26 and 40 degrees above the table, at low resolution (an object is
  ~10-20 pixels across);
- planted features noisy per view and region (cosine ~0.975 to their category's), as a real
  encoder gives slightly different features for the same object in different views.

Per-pixel truth is the region of the Gaussian with the most blending weight at the pixel
(``top_labels``); the planted masks are the same labels (a perfect segmenter), so only ovseg's
3D side and its per-pixel rendering are measured. The result is a ``FaintCapture`` (part 1 is
the table, labelled with the background name ``floor``), so ``ovseg_core.eval.segment_quality``
and the bench measure it as they measure ``faint_capture``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.fields.training import TrainingView
from ovseg_core.render import Renderer
from ovseg_core.synthetic.faint_capture import OBJECT_NAMES, FaintCapture, _capture, _object, top_labels

__all__ = ["noisy_planted_views", "tabletop_capture", "top_labels"]

RING_ELEVATIONS_DEG: tuple[float, ...] = (12.0, 26.0, 40.0)
"""Camera rings, degrees above the table plane."""
COVER_OBJECT = 9.0
"""How many times Gaussians cover an object's surface (sets their size; many blended per pixel)."""
COVER_TABLE = 10.0


def _opacities(g: np.random.Generator, n: int) -> np.ndarray:
    """Log-normal opacities with median ~0.09 and a heavy tail, capped at 0.99."""
    return np.clip(np.exp(g.normal(math.log(0.09), 1.1, n)), 0.004, 0.99)


def tabletop_capture(
    num_objects: int = 8,
    gaussians_per_object: int = 300,
    *,
    cameras_per_ring: int = 12,
    width: int = 256,
    height: int = 144,
    table: int = 2000,
    floaters: int = 150,
    seed: int = 0,
    embed_dim: int = 64,
) -> FaintCapture:
    """``num_objects`` small shells in two rows (spacing ~3 object widths) on a table top
    (1.4 x 0.9, height jitter 4 mm), floaters in the air, and ``3 * cameras_per_ring`` cameras in
    ``RING_ELEVATIONS_DEG`` rings (rings offset in azimuth so no two views coincide)."""
    if not 1 <= num_objects <= len(OBJECT_NAMES):
        raise ValueError(f"num_objects must be in [1, {len(OBJECT_NAMES)}], got {num_objects}")
    g = np.random.default_rng(seed)
    kinds = ("sphere", "box", "cylinder")
    means, ids, parts, scales, colours = [], [], [], [], []
    per_row = math.ceil(num_objects / 2)
    spacing = 0.26
    for k in range(num_objects):
        row, col = divmod(k, per_row)
        size = 0.045 + 0.01 * (k % 3)
        centre = np.array([(col - (per_row - 1) / 2) * spacing, (row - 0.5) * spacing, 0.0])
        for part, value in zip(
            (means, scales, colours, ids, parts),
            _object(g, k, kinds[k % 3], gaussians_per_object, centre, size, COVER_OBJECT),
            strict=True,
        ):
            part.append(value)
    # the table top: flat Gaussians (thin along z) on a near-planar surface
    extent = np.array([0.7, 0.45])
    top = np.c_[g.uniform(-1, 1, (table, 2)) * extent, g.normal(0, 0.004, table)]
    s = math.sqrt(COVER_TABLE * 4 * extent.prod() / (table * 2 * np.pi))
    table_scales = s * np.exp(g.normal(0, 0.3, (table, 3)))
    table_scales[:, 2] *= 0.2
    means.append(top)
    ids.append(np.full(table, -1))
    parts.append(np.full(table, 1))
    scales.append(table_scales)
    colours.append(np.clip(0.5 + g.normal(0, 0.08, (table, 3)), 0.01, 0.99))
    fl = np.c_[g.uniform(-0.7, 0.7, floaters), g.uniform(-0.45, 0.45, floaters), g.uniform(0.02, 0.4, floaters)]
    means.append(fl)
    ids.append(np.full(floaters, -1))
    parts.append(np.full(floaters, 4))
    scales.append(np.exp(g.normal(math.log(0.006), 0.3, (floaters, 3))))
    colours.append(g.uniform(0.05, 0.95, (floaters, 3)))
    means_a = np.concatenate(means)
    n = len(means_a)
    opacity = _opacities(g, n)
    quats = g.normal(size=(n, 4))
    part_a = np.concatenate(parts)
    quats[part_a == 1] = (1.0, 0.0, 0.0, 0.0)  # the table's Gaussians lie flat in its plane
    cams = []
    for r, elev_deg in enumerate(RING_ELEVATIONS_DEG):
        elev = math.radians(elev_deg)
        for i in range(cameras_per_ring):
            phi = 2 * np.pi * (i + r / len(RING_ELEVATIONS_DEG)) / cameras_per_ring
            eye = 1.25 * np.array([math.cos(elev) * math.cos(phi), math.cos(elev) * math.sin(phi), math.sin(elev)])
            cams.append(Camera.look_at(eye, (0, 0, 0.03), width=width, height=height, fov_y_deg=40))
    layers = (means_a, quats, scales, colours, ids, part_a, opacity)
    return _capture(layers, cams, num_objects, (0.5, 0.6), f"tabletop-capture-{num_objects}-{seed}", seed, embed_dim)


def noisy_planted_views(
    capture: FaintCapture,
    renderer: Renderer,
    cameras: list[Camera] | None = None,
    *,
    feature_cosine: float = 0.975,
    seed: int = 0,
) -> list[TrainingView]:
    """One ``TrainingView`` per camera: ``top_labels`` as the mask map of all four scales, and
    per view each region's vocabulary feature turned by a random direction so its cosine to the
    category's feature is ``feature_cosine``."""
    if not 0.0 < feature_cosine <= 1.0:
        raise ValueError(f"feature_cosine must lie in (0, 1], got {feature_cosine}")
    feats = capture.vocabulary.features.float()
    gen = torch.Generator().manual_seed(seed)
    sin = math.sqrt(1.0 - feature_cosine**2)
    out = []
    for i, cam in enumerate(capture.cameras if cameras is None else cameras):
        noise = torch.randn(feats.shape, generator=gen)
        noise -= (noise * feats).sum(1, keepdim=True) * feats  # orthogonal to each feature
        noise = noise / noise.norm(dim=1, keepdim=True).clamp_min(1e-12)
        view_feats = feature_cosine * feats + sin * noise
        seg = torch.from_numpy(top_labels(capture, renderer, cam))
        out.append(TrainingView(f"view_{i:03d}", cam, view_feats, torch.stack([seg] * 4)))
    return out
