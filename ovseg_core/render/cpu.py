"""Fast CPU renderer: numba-compiled projection, tile binning and compositing, parallel over tiles."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.render import _cpu_kernels as kernels
from ovseg_core.render.base import (
    Pick,
    RenderOutput,
    RenderSettings,
    as_camera_batch,
    check_features,
    pick_by_tile,
)
from ovseg_core.scene import GaussianScene


class _SceneArrays:
    """float32 contiguous numpy views of a scene, cached per scene object."""

    def __init__(self, scene: GaussianScene) -> None:
        f = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)  # noqa: E731
        self.means = f(scene.means)
        self.quats = f(scene.quats)
        self.log_scales = f(scene.log_scales)
        self.logit_opacities = f(scene.logit_opacities)
        self.sh0 = f(scene.sh0)
        self.shN = (
            f(scene.shN) if scene.shN.shape[1] else np.zeros((scene.num_gaussians, 1, scene.num_channels), np.float32)
        )
        self.sh_degree = scene.sh_degree


class CpuRenderer:
    """The CPU fast path. Outputs match ``TorchRenderer`` to float32 rounding."""

    name = "cpu"

    def __init__(self, settings: RenderSettings | None = None) -> None:
        self.settings = settings or RenderSettings()
        self._cache_key: tuple[int, int] | None = None
        self._arrays: _SceneArrays | None = None
        # numba already uses every core; the lock keeps concurrent callers off the shared buffers.
        self._lock = threading.Lock()

    def _scene_arrays(self, scene: GaussianScene) -> _SceneArrays:
        key = (id(scene), scene.means.data_ptr())
        if self._cache_key != key or self._arrays is None:
            self._arrays = _SceneArrays(scene)
            self._cache_key = key
        return self._arrays

    def render(
        self,
        scene: GaussianScene,
        cameras: Camera | Sequence[Camera],
        *,
        features: torch.Tensor | None = None,
        top_k: int = 0,
        tiles: Sequence[tuple[int, int]] | None = None,
    ) -> RenderOutput:
        """Render; ``tiles`` (tile x, tile y) limits work to those tiles (others stay empty)."""
        cams = as_camera_batch(cameras)
        check_features(scene, features)
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        with self._lock:
            arrays = self._scene_arrays(scene)
        n = scene.num_gaussians
        feats = (
            np.ascontiguousarray(features.detach().cpu().numpy(), dtype=np.float32)
            if features is not None
            else np.zeros((n, 0), np.float32)
        )
        with self._lock:
            results = [self._render_one(arrays, cam, feats, top_k, tiles) for cam in cams]
        stack = lambda i: torch.from_numpy(np.stack([r[i] for r in results]))  # noqa: E731
        return RenderOutput(
            rgb=stack(0),
            alpha=stack(1),
            depth=stack(2),
            features=stack(3) if features is not None else None,
            contrib_ids=stack(4) if top_k > 0 else None,
            contrib_weights=stack(5) if top_k > 0 else None,
        )

    def pick(self, scene: GaussianScene, camera: Camera, pixel: tuple[float, float], k: int = 8) -> Pick:
        return pick_by_tile(self, scene, camera, pixel, k)

    def _work_buffers(self, n: int, channels: int) -> tuple[np.ndarray, ...]:
        """Per-Gaussian scratch arrays, reused across frames: fresh ones cost page faults every frame.
        ``project`` writes every entry a later stage reads, so they need no clearing."""
        key = (n, channels)
        if getattr(self, "_buffers_key", None) != key:
            self._buffers = (
                np.empty((n, 2), np.float32),  # means2d
                np.empty((n, 3), np.float32),  # conics
                np.empty(n, np.float32),  # depths
                np.empty(n, np.float32),  # opacities
                np.empty((n, 2), np.int32),  # radii
                np.empty((n, 3), np.float32),  # extents
                np.empty((n, 4), np.int32),  # rects
                np.empty((n, channels), np.float32),  # colors
            )
            self._buffers_key = key
        return self._buffers

    def _render_one(
        self,
        a: _SceneArrays,
        cam: Camera,
        feats: np.ndarray,
        top_k: int,
        tiles: Sequence[tuple[int, int]] | None,
    ) -> tuple[np.ndarray, ...]:
        s = self.settings
        n = a.means.shape[0]
        W, H, T = cam.width, cam.height, s.tile_size
        tiles_x, tiles_y = math.ceil(W / T), math.ceil(H / T)
        degree = a.sh_degree if s.sh_degree < 0 else min(s.sh_degree, a.sh_degree)
        means2d, conics, depths, opacities, radii, extents, rects, colors = self._work_buffers(n, a.sh0.shape[2])
        K = cam.K
        kernels.project(
            a.means, a.quats, a.log_scales, a.logit_opacities, a.sh0, a.shN, degree,
            np.ascontiguousarray(cam.w2c[:3, :3]), np.ascontiguousarray(cam.w2c[:3, 3]), np.ascontiguousarray(cam.position),
            float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), W, H,
            float(s.near), float(s.far), float(s.eps_2d), T, tiles_x, tiles_y,
            means2d, conics, depths, opacities, radii, extents, rects, colors,
        )  # fmt: skip
        visible = np.flatnonzero((rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1]))
        offsets, gids = kernels.bin_tiles(visible.astype(np.int32), rects, tiles_x * tiles_y, tiles_x)
        if tiles is None:
            # Shuffled so prange's static split hands both threads a similar mix of busy tiles.
            todo = np.random.default_rng(0).permutation(tiles_x * tiles_y).astype(np.int64)
        else:
            todo = np.array([ty * tiles_x + tx for tx, ty in tiles], dtype=np.int64)
        rgb = np.zeros((H, W, colors.shape[1]), np.float32)
        depth = np.zeros((H, W), np.float32)
        trans = np.ones((H, W), np.float32)
        feat = np.zeros((H, W, feats.shape[1]), np.float32)
        ids = np.full((H, W, top_k), -1, np.int64)
        ws = np.zeros((H, W, top_k), np.float32)
        kernels.rasterize(
            offsets, gids, todo, means2d, conics, opacities, extents, colors, depths, feats,
            W, H, T, tiles_x, rgb, depth, trans, feat, ids, ws,
        )  # fmt: skip
        alpha = 1.0 - trans
        rgb += trans[..., None] * np.asarray(s.background, np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            exp_depth = np.where(alpha > 0, depth / np.maximum(alpha, 1e-12), 0.0).astype(np.float32)
        return rgb, alpha[..., None], exp_depth[..., None], feat, ids, ws
