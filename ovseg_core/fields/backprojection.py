"""Weighted back-projection of per-pixel values onto the Gaussians that blend into the pixels.

A Gaussian's value is the blending-weight-weighted average of the pixel values it contributes
to, over all views: v_i = sum_p w_pi x_p / sum_p w_pi (OpenScene's 2D-3D fusion). Every
contributor above ``min_weight`` is taken: at most ``ceil(1 / min_weight)`` per pixel, because a
pixel's weights sum to at most 1 (``FloorCompleteRenderer`` asks for only as many as the scene needs).
Faint splats blend 30+ Gaussians per pixel, so a fixed top-16 would leave a third of the
Gaussians unseen. Memory stays bounded: a view is rendered in horizontal bands (sub-cameras
with a shifted principal point) of at most ``max_entries`` contributions each. A band is exact
except for Gaussians whose centres lie beyond 1.3x its frustum: the rasteriser evaluates their
projection Jacobian at the clamped point (3DGS's rule at any image border), so their weights
differ slightly (below 5% of a pixel's weight on the tests' scene).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numba as nb
import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.fields.config import BackprojectionConfig
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene


def band_camera(camera: Camera, row0: int, rows: int) -> Camera:
    """The sub-camera that renders rows ``row0 .. row0 + rows - 1`` of ``camera`` exactly."""
    K = camera.K.copy()
    K[1, 2] -= row0
    return Camera(camera.w2c, K, camera.width, rows)


FIRST_K = 64
"""Contributions per pixel a band is first rendered with when only those above a floor count."""


class FloorCompleteRenderer:
    """Renders bands with as few top-k slots as still hold every contribution above a floor.

    The renderer's lists are sorted by weight, so if a pixel's k-th weight is below ``min_weight``
    none of the contributions cut from it reach the floor; if it reaches the floor, the band is
    rendered again with 2k slots (up to ``max_k``). The result holds exactly the entries
    >= ``min_weight`` that a top-``max_k`` render holds, at the cost of the k the scene needs:
    ~20-140 above 1/1024 on faint splats against ``max_k`` = 1024, and time and memory grow with
    the slots (pixels x k), not with the contributions. k carries over from band to band, since
    blend depth changes slowly across an image.
    """

    def __init__(self, renderer: Renderer, max_k: int, min_weight: float, first_k: int = FIRST_K) -> None:
        self.renderer = renderer
        self.max_k = max_k
        self.min_weight = min_weight
        self.k = max_k if min_weight <= 0 else min(first_k, max_k)

    def render(self, scene: GaussianScene, camera: Camera, **kwargs: Any):  # noqa: ANN201 - RenderOutput
        while True:
            out = self.renderer.render(scene, camera, top_k=self.k, **kwargs)
            assert out.contrib_ids is not None and out.contrib_weights is not None
            last_id, last_w = out.contrib_ids[0, ..., -1], out.contrib_weights[0, ..., -1]
            if self.k >= self.max_k or not bool(((last_id >= 0) & (last_w >= self.min_weight)).any()):
                return out
            self.k = min(2 * self.k, self.max_k)


def contribution_bands(
    renderer: Renderer,
    scene: GaussianScene,
    camera: Camera,
    config: BackprojectionConfig,
    device: torch.device | None = None,
) -> Iterator[tuple[int, Any, Any]]:
    """Yield ``(row0, ids [h, W, k] int64, weights [h, W, k] float32)`` band by band (k varies,
    every contribution >= ``config.min_weight`` is held): numpy arrays, or torch tensors on
    ``device`` when one is given. Bands are sized for ``config.top_k`` slots, the most a band may need."""
    K = config.top_k
    rows = max(1, min(camera.height, config.max_entries // max(camera.width * K, 1)))
    floor_renderer = FloorCompleteRenderer(renderer, K, config.min_weight)
    for row0 in range(0, camera.height, rows):
        h = min(rows, camera.height - row0)
        cam = camera if h == camera.height else band_camera(camera, row0, h)
        out = floor_renderer.render(scene, cam)
        if device is not None:
            yield row0, out.contrib_ids[0].to(device), out.contrib_weights[0].to(device, torch.float32)
        else:
            yield row0, out.contrib_ids[0].cpu().numpy(), out.contrib_weights[0].cpu().numpy().astype(np.float32)


def accumulation_device(config: BackprojectionConfig, scene: GaussianScene) -> torch.device | None:
    """The device the torch accumulation runs on, or None for the numba kernels (``config.backend``)."""
    if config.backend == "numba" or (config.backend == "auto" and scene.device.type == "cpu"):
        return None
    return scene.device


@nb.njit(cache=True)
def accumulate_entries(acc, evidence, ids, weights, pixel_entry, min_weight):
    """acc[g, e] += w and evidence[g] += w^2 for every contribution (pixel p -> g, weight w >=
    floor) of a pixel with entry e = pixel_entry[p] >= 0. ids/weights [P, K], pixel_entry [P]."""
    P, K = ids.shape
    for p in range(P):
        e = pixel_entry[p]
        if e < 0:
            continue
        for k in range(K):
            g = ids[p, k]
            w = weights[p, k]
            if g < 0 or w < min_weight:
                continue
            acc[g, e] += w
            evidence[g] += w * w


@nb.njit(cache=True)
def accumulate_codes(acc, evidence, ids, weights, pixel_codes, valid, min_weight):
    """acc[g, :] += w * pixel_codes[p, :] and evidence[g] += w^2 for valid pixels (as ``accumulate_entries``)."""
    P, K = ids.shape
    E = pixel_codes.shape[1]
    for p in range(P):
        if not valid[p]:
            continue
        for k in range(K):
            g = ids[p, k]
            w = weights[p, k]
            if g < 0 or w < min_weight:
                continue
            for e in range(E):
                acc[g, e] += w * pixel_codes[p, e]
            evidence[g] += w * w


def accumulate_codes_torch(
    acc: torch.Tensor,
    evidence: torch.Tensor,
    ids: torch.Tensor,
    weights: torch.Tensor,
    pixel_codes: torch.Tensor,
    valid: torch.Tensor,
    min_weight: float,
    chunk_entries: int = 1 << 20,
) -> None:
    """Plain-PyTorch twin of ``accumulate_codes`` (and of ``accumulate_entries`` with one-hot
    codes), on the tensors' device. Kept contributions go in chunks, so the ``[chunk, E]``
    weighted codes stay bounded (~256 MB at E = 64)."""
    keep = (ids >= 0) & (weights >= min_weight) & valid[:, None]
    p_all, k_all = torch.nonzero(keep, as_tuple=True)
    for c0 in range(0, len(p_all), chunk_entries):
        p, k = p_all[c0 : c0 + chunk_entries], k_all[c0 : c0 + chunk_entries]
        g, w = ids[p, k], weights[p, k]
        acc.index_add_(0, g, w[:, None] * pixel_codes[p])
        evidence.index_add_(0, g, w * w)


def accumulate_entries_torch(
    acc: torch.Tensor,
    evidence: torch.Tensor,
    ids: torch.Tensor,
    weights: torch.Tensor,
    pixel_entry: torch.Tensor,
    min_weight: float,
) -> None:
    """Plain-PyTorch twin of ``accumulate_entries`` (``acc`` [N, S], ``evidence`` [N], ``ids`` /
    ``weights`` [P, K], ``pixel_entry`` [P]): one scatter on flattened ``g * S + e`` indices."""
    keep = (ids >= 0) & (weights >= min_weight) & (pixel_entry >= 0)[:, None]
    p, k = torch.nonzero(keep, as_tuple=True)
    g, w = ids[p, k], weights[p, k]
    acc.view(-1).index_add_(0, g * acc.shape[1] + pixel_entry[p], w)
    evidence.index_add_(0, g, w * w)


def sparse_top(acc: np.ndarray | torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's ``top_k`` largest entries renormalised to sum 1 -> (idx [N, J] int64, val [N, J],
    on the CPU); rows that received nothing keep all-zero values (they were never seen)."""
    # On the CPU whatever the accumulation ran on: topk breaks ties the same way on every path.
    acc_t = torch.from_numpy(acc) if isinstance(acc, np.ndarray) else acc.float().cpu()
    val, idx = torch.topk(acc_t, min(top_k, acc.shape[1]), dim=1)
    val = val.clamp_min(0)
    val = val / val.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return idx.cpu(), val.cpu()
