"""Helpers for writing a backend: camera batches, argument checks and picking by one tile.

A backend module imports what it needs from here (the shared types are re-exported, so one import
line serves it); this module imports no backend, and ``ovseg_core.render`` registers the backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ovseg_core.camera import Camera
from ovseg_core.render.types import (
    ALPHA_MAX,
    ALPHA_MIN,
    RADIUS_SIGMAS,
    TRANSMITTANCE_MIN,
    Pick,
    Renderer,
    RenderOutput,
    RenderSettings,
)
from ovseg_core.scene import GaussianScene

__all__ = [
    "ALPHA_MAX",
    "ALPHA_MIN",
    "RADIUS_SIGMAS",
    "TRANSMITTANCE_MIN",
    "Pick",
    "RenderOutput",
    "RenderSettings",
    "Renderer",
    "as_camera_batch",
    "check_features",
    "check_pixel",
    "pick_by_tile",
    "pick_from_output",
]


def as_camera_batch(cameras: Camera | Sequence[Camera]) -> list[Camera]:
    """A non-empty list of cameras sharing one image size."""
    cams = [cameras] if isinstance(cameras, Camera) else list(cameras)
    if not cams:
        raise ValueError("render needs at least one camera")
    sizes = {(c.width, c.height) for c in cams}
    if len(sizes) > 1:
        raise ValueError(f"cameras in one batch must share an image size, got {sorted(sizes)}")
    return cams


def check_features(scene: GaussianScene, features: torch.Tensor | None) -> None:
    if features is None:
        return
    if features.ndim != 2 or features.shape[0] != scene.num_gaussians:
        raise ValueError(f"features must be [N={scene.num_gaussians}, D], got {list(features.shape)}")


def check_pixel(camera: Camera, pixel: tuple[float, float]) -> tuple[int, int]:
    x, y = int(pixel[0]), int(pixel[1])
    if not (0 <= pixel[0] < camera.width and 0 <= pixel[1] < camera.height):
        raise ValueError(f"pixel {tuple(pixel)} lies outside the {camera.width}x{camera.height} image")
    return x, y


def pick_from_output(out: RenderOutput, x: int, y: int) -> Pick:
    """Read a Pick out of a render with contributions."""
    assert out.contrib_ids is not None and out.contrib_weights is not None
    ids, weights = out.contrib_ids[0, y, x].cpu(), out.contrib_weights[0, y, x].cpu()
    keep = ids >= 0
    return Pick(ids=ids[keep].long(), weights=weights[keep], depth=float(out.depth[0, y, x, 0]))


def pick_by_tile(renderer: Any, scene: GaussianScene, camera: Camera, pixel: tuple[float, float], k: int) -> Pick:
    """``pick`` for renderers whose ``render`` takes ``tiles=``: render only the pixel's tile."""
    x, y = check_pixel(camera, pixel)
    t = renderer.settings.tile_size
    return pick_from_output(renderer.render(scene, camera, top_k=k, tiles=[(x // t, y // t)]), x, y)
