"""A LERF-sized synthetic capture for ``ovseg-bench scale``: ~1M Gaussians with a real splat's
statistics (``faint_capture``: median opacity ~0.06, ~30 Gaussians blended per pixel, haze and
floaters) and 150+ views at ~986x728 with planted per-region masks and features.

The masks come from a point z-buffer of the Gaussian centres at a reduced resolution (the nearest
object/floor/wall centre owns a pixel), upsampled to the view: vectorised numpy, a fraction of a
second per view at 1M Gaussians and a few tens of MB at a time, instead of rendering every view.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.fields.training import TrainingView
from ovseg_core.synthetic.faint_capture import FaintCapture, faint_capture

HAZE = 600
"""Haze blobs (their size is fixed, so their count sets how much of the view they veil: kept as in
``faint_capture`` whatever the scene size)."""
FLOATER_SHARE = 0.01
BACKGROUND_SHARE = 0.5
"""Floor and wall Gaussians (a real capture spends most of its Gaussians on the room)."""


def scale_capture(
    num_gaussians: int = 1_000_000,
    num_views: int = 150,
    width: int = 986,
    height: int = 728,
    *,
    num_objects: int = 8,
    embed_dim: int = 512,
    seed: int = 0,
) -> FaintCapture:
    """``faint_capture`` with ``num_gaussians`` in all (half floor and wall, 1% floaters, 600 haze
    blobs, the rest split over ``num_objects`` objects) seen by ``num_views`` orbit cameras.
    Gaussian sizes follow the counts, so the blend count per pixel stays ~30 at any size."""
    floaters = max(int(num_gaussians * FLOATER_SHARE), 10)
    haze = min(HAZE, max(num_gaussians // 40, 10))
    background = max(int(num_gaussians * BACKGROUND_SHARE), 100)
    per_object = (num_gaussians - floaters - haze - background) // num_objects
    if per_object < 50:
        raise ValueError(f"{num_gaussians} Gaussians are too few for {num_objects} objects (need ~1,000 or more)")
    background = num_gaussians - floaters - haze - per_object * num_objects  # exact total
    return faint_capture(
        num_objects,
        per_object,
        num_cameras=num_views,
        width=width,
        height=height,
        haze=haze,
        floaters=floaters,
        background=background,
        seed=seed,
        embed_dim=embed_dim,
    )


@dataclasses.dataclass
class PointMasks:
    """Per-view region masks of a capture from a z-buffer of its region Gaussians' centres."""

    means: np.ndarray
    """``[R, 3]`` float32 centres of the Gaussians that belong to a region (objects, floor, wall)."""
    regions: np.ndarray
    """``[R]`` int64 their region (object k, K = floor, K + 1 = wall)."""
    downsample: int = 4
    """The z-buffer's resolution is the view's divided by this (then upsampled)."""

    @classmethod
    def of(cls, capture: FaintCapture, downsample: int = 4) -> PointMasks:
        regions = capture.region_ids()
        keep = regions >= 0
        means = capture.scene.means.detach().cpu().numpy()[keep].astype(np.float32)
        return cls(means, regions[keep], max(int(downsample), 1))

    def labels(self, camera: Camera) -> np.ndarray:
        """``[H, W]`` int64 region of every pixel of ``camera``, -1 where no region shows."""
        small = camera.downsampled(self.downsample)
        h, w = small.height, small.width
        uv, z = small.project(self.means)
        x, y = uv[:, 0], uv[:, 1]
        ok = (z > 1e-3) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
        pix = y[ok].astype(np.int64) * w + x[ok].astype(np.int64)
        z, reg = z[ok], self.regions[ok]
        # z-buffer without sorting: the nearest centre of each pixel owns it
        nearest = np.full(h * w, np.inf, np.float32)
        np.minimum.at(nearest, pix, z)
        win = z <= nearest[pix]
        lab = np.full(h * w, -1, np.int64)
        lab[pix[win]] = reg[win]
        lab = lab.reshape(h, w)
        # back to the view's size (nearest), cropping what rounding added
        ry = np.minimum((np.arange(camera.height) * h) // camera.height, h - 1)
        rx = np.minimum((np.arange(camera.width) * w) // camera.width, w - 1)
        return lab[ry[:, None], rx[None, :]]


def scale_views(
    capture: FaintCapture, cameras: list[Camera] | None = None, downsample: int = 4, *, first_index: int = 0
) -> list[TrainingView]:
    """One ``TrainingView`` per camera (named ``view_<first_index + i>``): each region the view
    shows is a mask (the same map at all four scales, shared, not copied) with the region's
    planted vocabulary feature."""
    masks = PointMasks.of(capture, downsample)
    feats = capture.vocabulary.features.float()
    out = []
    for i, cam in enumerate(capture.cameras if cameras is None else cameras, start=first_index):
        seg = torch.from_numpy(masks.labels(cam))
        out.append(TrainingView(f"view_{i:03d}", cam, feats, seg.expand(4, *seg.shape)))
    return out
