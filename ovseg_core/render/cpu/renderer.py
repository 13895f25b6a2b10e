"""The CPU renderer: runs the stages (projection, colours and depth sort, binning, compositing) per frame."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import numba
import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.render.base import (
    Pick,
    RenderOutput,
    RenderSettings,
    as_camera_batch,
    check_features,
    pick_by_tile,
)
from ovseg_core.render.cpu.binning import bin_tiles
from ovseg_core.render.cpu.projection import project
from ovseg_core.render.cpu.records import alpha_extent_sigma, record_width
from ovseg_core.render.cpu.scratch import ScratchBuffers, threads_for
from ovseg_core.render.cpu.shading import sh_colors
from ovseg_core.render.cpu.sorting import depth_order
from ovseg_core.render.cpu.tiles import rasterize
from ovseg_core.render.projection import covariances
from ovseg_core.scene import GaussianScene


class _SceneArrays:
    """float32 contiguous numpy arrays of a scene, cached per scene object and parameter version.

    The 3D covariances and opacities are computed once here (with the torch reference's own
    functions), so a frame starts from them instead of quaternions, log-scales and logits.
    """

    def __init__(self, scene: GaussianScene) -> None:
        f = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)  # noqa: E731
        self.means = f(scene.means)
        with torch.no_grad():
            cov = covariances(scene.quats.detach().float(), scene.log_scales.detach().float())
            self.cov3d = f(cov.reshape(-1, 9)[:, [0, 1, 2, 4, 5, 8]])
            self.opacities = f(scene.opacities)
        self.smax = alpha_extent_sigma(self.opacities)
        self.sh0 = f(scene.sh0)
        self.shN = (
            f(scene.shN) if scene.shN.shape[1] else np.zeros((scene.num_gaussians, 1, scene.num_channels), np.float32)
        )
        self.sh_degree = scene.sh_degree


def _scene_key(scene: GaussianScene) -> tuple[int, ...]:
    """Identity plus torch's in-place version counters: an edited parameter rebuilds the cache."""
    tensors = (scene.means, scene.quats, scene.log_scales, scene.logit_opacities, scene.sh0, scene.shN)
    return (id(scene), *(t.data_ptr() for t in tensors), *(t._version for t in tensors))


class CpuRenderer:
    """The CPU fast path. Outputs match ``TorchRenderer`` to float32 rounding."""

    name = "cpu"

    def __init__(self, settings: RenderSettings | None = None) -> None:
        self.settings = settings or RenderSettings()
        self._cache_key: tuple[int, ...] | None = None
        self._arrays: _SceneArrays | None = None
        # numba already uses every core; the lock keeps concurrent callers off the shared buffers.
        self._lock = threading.Lock()
        self.last_timings: dict[str, float] = {}
        """Seconds per stage of the last frame (project, sh_sort, bin, composite)."""
        self._buffers = ScratchBuffers()

    def _scene_arrays(self, scene: GaussianScene) -> _SceneArrays:
        key = _scene_key(scene)
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

        def stack(i: int) -> torch.Tensor:  # one camera: a view with a leading axis, no copy
            return torch.from_numpy(results[0][i][None] if len(results) == 1 else np.stack([r[i] for r in results]))

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
        n_col = a.sh0.shape[2]
        W, H, T = cam.width, cam.height, s.tile_size
        tiles_x, tiles_y = math.ceil(W / T), math.ceil(H / T)
        degree = a.sh_degree if s.sh_degree < 0 else min(s.sh_degree, a.sh_degree)
        width = record_width(n_col)
        depths, rec = self._buffers.get("depths", (n,), np.float32), self._buffers.get("rec", (n, width), np.float32)
        rects, foot = self._buffers.get("rects", (n, 4), np.int32), self._buffers.get("foot", (n,), np.int32)
        K = cam.K
        clock = [time.perf_counter()]
        with threads_for(n):
            project(
                a.means, a.cov3d, a.opacities, a.smax,
                np.ascontiguousarray(cam.w2c[:3, :3]), np.ascontiguousarray(cam.w2c[:3, 3]),
                float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), W, H,
                float(s.near), float(s.far), float(s.eps_2d), T, tiles_x, tiles_y,
                depths, rec, rects, foot, numba.get_num_threads(),
            )  # fmt: skip
        visible = np.flatnonzero((rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])).astype(np.int32)
        clock.append(time.perf_counter())
        m = len(visible)
        with threads_for(m):
            # One depth sort: tile lists are made in that order, so a stable bin by tile leaves each
            # tile's list depth-ordered. Records stay in scene order and are read through indices.
            sh_colors(visible, a.means, a.sh0, a.shN, degree, np.ascontiguousarray(cam.position), rec)
            order = depth_order(visible, depths, 2 * numba.get_num_threads())
            clock.append(time.perf_counter())
        with threads_for(m):
            offsets, gids = bin_tiles(
                order, foot, rects, rec, T, tiles_x, tiles_x * tiles_y, 4 * numba.get_num_threads()
            )
        self._last_binning = {
            "rec": rec,
            "order": order,
            "rects": rects,
            "foot": foot,
            "offsets": offsets,
            "gids": gids,
        }
        if tiles is None:
            # Busiest tiles first, dealt out in turn to the threads (see ``rasterize``).
            todo = np.argsort(-np.diff(offsets), kind="stable")
        else:
            todo = np.array([ty * tiles_x + tx for tx, ty in tiles], dtype=np.int64)
        clock.append(time.perf_counter())
        given = np.asarray(s.background, np.float32).reshape(-1)
        if given.size not in (1, n_col):  # an RGB background for a non-RGB splat: its colour channels, 0 past them
            given = np.concatenate([given, np.zeros(max(n_col - given.size, 0), np.float32)])[:n_col]
        background = np.broadcast_to(given, (n_col,)).copy()
        # Every pixel of a rendered tile is written; only a render limited to some tiles needs the rest set.
        blank = np.zeros if tiles is not None else np.empty
        rgb, alpha, depth = blank((H, W, n_col), np.float32), blank((H, W, 1), np.float32), blank((H, W, 1), np.float32)
        if tiles is not None:
            rgb[:] = background
        feat = blank((H, W, feats.shape[1]), np.float32)
        ids = np.full((H, W, top_k), -1, np.int64) if tiles is not None else np.empty((H, W, top_k), np.int64)
        ws = blank((H, W, top_k), np.float32)
        rasterize(
            offsets, gids, todo, rec, feats,
            W, H, T, tiles_x, background, rgb, alpha[..., 0], depth[..., 0], feat, ids, ws, numba.get_num_threads(),
        )  # fmt: skip
        clock.append(time.perf_counter())
        stages = ("project", "sh_sort", "bin", "composite")
        self.last_timings = {k: clock[i + 1] - clock[i] for i, k in enumerate(stages)}
        return rgb, alpha, depth, feat, ids, ws
