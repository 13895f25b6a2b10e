"""Fast CPU renderer: numba-compiled projection, depth sort, tile binning and compositing, parallel over tiles."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Sequence

import numba
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
from ovseg_core.render.projection import covariances
from ovseg_core.scene import GaussianScene

PARALLEL_MIN_ITEMS = 100_000
"""Stages over fewer Gaussians (or pairs) than this run on one thread: waking the pool costs more than it
saves, and far more when other processes keep the cores busy."""


@contextlib.contextmanager
def _threads_for(n_items: int):
    if n_items >= PARALLEL_MIN_ITEMS:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


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
        """Seconds per stage of the last frame (project, sh_sort, bin, composite, finish)."""

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
        ``project`` and ``sh_colors`` write every entry a later stage reads, so they need no clearing."""
        key = (n, channels)
        if getattr(self, "_buffers_key", None) != key:
            self._buffers = (
                np.empty(n, np.float32),  # depths
                np.empty((n, kernels.record_width(channels)), np.float32),  # records
                np.empty((n, 4), np.int32),  # tile rects
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
        depths, rec, rects = self._work_buffers(n, a.sh0.shape[2])
        K = cam.K
        clock = [time.perf_counter()]
        with _threads_for(n):
            kernels.project(
                a.means, a.cov3d, a.opacities,
                np.ascontiguousarray(cam.w2c[:3, :3]), np.ascontiguousarray(cam.w2c[:3, 3]),
                float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), W, H,
                float(s.near), float(s.far), float(s.eps_2d), T, tiles_x, tiles_y,
                depths, rec, rects,
            )  # fmt: skip
        visible = np.flatnonzero((rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])).astype(np.int32)
        clock.append(time.perf_counter())
        m = len(visible)
        with _threads_for(m):
            kernels.sh_colors(visible, a.means, a.sh0, a.shN, degree, np.ascontiguousarray(cam.position), rec)
            # One depth sort; the survivors are packed in that order, so every later stage reads memory
            # front to back and a stable bin by tile leaves each tile's list depth-ordered.
            order = kernels.depth_order(visible, depths)
            pk, prects = np.empty((m, rec.shape[1]), np.float32), np.empty((m, 4), np.int32)
            kernels.gather_sorted(order, rec, rects, pk, prects)
            clock.append(time.perf_counter())
            starts = np.zeros(m + 1, np.int64)
            np.cumsum(kernels.count_tiles(pk, prects, T), out=starts[1:])
            pair_tiles = np.empty(starts[-1], np.int32)
            kernels.list_tiles(starts, pk, prects, T, tiles_x, pair_tiles)
        offsets, gids = kernels.bin_pairs(starts, pair_tiles, tiles_x * tiles_y)
        self._last_binning = {"pk": pk, "rects": prects, "starts": starts, "pair_tiles": pair_tiles}
        if tiles is None:
            # Busiest tiles first, handed out one at a time: the threads finish together.
            todo = np.argsort(-np.diff(offsets), kind="stable")
        else:
            todo = np.array([ty * tiles_x + tx for tx, ty in tiles], dtype=np.int64)
        tpk = np.empty((len(gids), pk.shape[1]), np.float32)
        with _threads_for(len(gids)):
            kernels.gather_pairs(gids, pk, tpk)
        clock.append(time.perf_counter())
        rgb = np.zeros((H, W, a.sh0.shape[2]), np.float32)
        depth = np.zeros((H, W), np.float32)
        trans = np.ones((H, W), np.float32)
        feat = np.zeros((H, W, feats.shape[1]), np.float32)
        ids = np.full((H, W, top_k), -1, np.int64)
        ws = np.zeros((H, W, top_k), np.float32)
        with numba.parallel_chunksize(1):
            kernels.rasterize(
                offsets, gids, todo, tpk, order, feats,
                W, H, T, tiles_x, rgb, depth, trans, feat, ids, ws,
            )  # fmt: skip
        clock.append(time.perf_counter())
        alpha = 1.0 - trans
        rgb += trans[..., None] * np.asarray(s.background, np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            exp_depth = np.where(alpha > 0, depth / np.maximum(alpha, 1e-12), 0.0).astype(np.float32)
        clock.append(time.perf_counter())
        stages = ("project", "sh_sort", "bin", "composite", "finish")
        self.last_timings = {k: clock[i + 1] - clock[i] for i, k in enumerate(stages)}
        return rgb, alpha[..., None], exp_depth[..., None], feat, ids, ws
