"""fVDB renderer (CUDA): ``fvdb_reality_capture.GaussianSplat3d``, imported only when used.

Colour renders use the scene's SH; features of any width D are rendered with fVDB's raw-feature
trick: sh0 = (f - 0.5) / C0, no higher bands, ``sh_degree_to_use=0``, so the image is sum w f.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.errors import BackendUnavailableError
from ovseg_core.render.base import (
    Pick,
    RenderOutput,
    RenderSettings,
    as_camera_batch,
    check_features,
    check_pixel,
    pick_from_output,
)
from ovseg_core.scene import SH_C0, GaussianScene

INSTALL_HINT = (
    "The fvdb backend needs CUDA and fvdb-reality-capture with a fvdb-core build matching your torch. "
    "Install with: pip install fvdb-reality-capture (plus the fvdb-core wheel for your torch/CUDA, see "
    "the fVDB docs), or use --backend cpu."
)


def fvdb_available() -> bool:
    """True when fvdb-reality-capture imports and CUDA is usable."""
    if not torch.cuda.is_available():
        return False
    try:
        import fvdb_reality_capture  # noqa: F401
    except Exception:  # any import failure means the backend cannot run
        return False
    return True


def _import_gaussian_splat3d() -> Any:
    try:
        from fvdb_reality_capture import GaussianSplat3d
    except Exception as e:  # ImportError, or fvdb failing to load its CUDA library
        raise BackendUnavailableError(f"cannot import fvdb_reality_capture ({e}). {INSTALL_HINT}") from e
    return GaussianSplat3d


class FvdbRenderer:
    """The CUDA fast path."""

    name = "fvdb"

    def __init__(self, settings: RenderSettings | None = None, *, device: str | torch.device = "cuda") -> None:
        self.settings = settings or RenderSettings()
        self.device = torch.device(device)
        if self.device.type != "cuda" or not torch.cuda.is_available():
            raise BackendUnavailableError(f"the fvdb backend needs a CUDA device (got {self.device}). {INSTALL_HINT}")
        self._GaussianSplat3d = _import_gaussian_splat3d()
        self._splat_key: tuple[int, int] | None = None
        self._splat: Any = None

    def _splat_for(self, scene: GaussianScene) -> Any:
        key = (id(scene), scene.means.data_ptr())
        if key != self._splat_key:
            s = scene.to(self.device)
            self._splat = self._GaussianSplat3d.from_tensors(
                s.means, s.quats, s.log_scales, s.logit_opacities, s.sh0, s.shN
            )
            self._splat_key = key
        return self._splat

    def _feature_splat(self, scene: GaussianScene, features: torch.Tensor) -> Any:
        s = scene.to(self.device)
        f = features.to(self.device, torch.float32)
        sh0 = ((f - 0.5) / SH_C0)[:, None, :]
        shN = torch.zeros(f.shape[0], 0, f.shape[1], device=self.device)
        return self._GaussianSplat3d.from_tensors(s.means, s.quats, s.log_scales, s.logit_opacities, sh0, shN)

    def _camera_args(self, cams: list[Camera]) -> dict[str, Any]:
        s = self.settings
        return dict(
            world_to_camera_matrices=torch.as_tensor(
                np.stack([c.w2c for c in cams]), dtype=torch.float32, device=self.device
            ),
            projection_matrices=torch.as_tensor(np.stack([c.K for c in cams]), dtype=torch.float32, device=self.device),
            image_width=cams[0].width,
            image_height=cams[0].height,
            near=s.near,
            far=s.far,
        )

    def render(
        self,
        scene: GaussianScene,
        cameras: Camera | Sequence[Camera],
        *,
        features: torch.Tensor | None = None,
        top_k: int = 0,
    ) -> RenderOutput:
        cams = as_camera_batch(cameras)
        check_features(scene, features)
        s = self.settings
        cam_args = self._camera_args(cams)
        common = dict(tile_size=s.tile_size, eps_2d=s.eps_2d)
        splat = self._splat_for(scene)
        bg = torch.tensor([s.background] * len(cams), dtype=torch.float32, device=self.device)
        images, alphas = splat.render_images_and_depths(
            **cam_args, sh_degree_to_use=s.sh_degree, backgrounds=None, **common
        )
        rgb_acc, depth_acc = images[..., :-1], images[..., -1:]
        rgb = rgb_acc + (1 - alphas) * bg[:, None, None, :]
        depth = torch.where(alphas > 0, depth_acc / alphas.clamp_min(1e-12), torch.zeros_like(depth_acc))
        feats = None
        if features is not None:
            feats, _ = self._feature_splat(scene, features).render_images(**cam_args, sh_degree_to_use=0, **common)
        ids = weights = None
        if top_k > 0:
            ids, weights = self._contributions(splat, cam_args, common, top_k, len(cams))
        return RenderOutput(
            rgb=rgb, alpha=alphas, depth=depth, features=feats, contrib_ids=ids, contrib_weights=weights
        )

    def _contributions(
        self, splat: Any, cam_args: dict[str, Any], common: dict[str, Any], top_k: int, num_cams: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ids, weights = splat.render_contributing_gaussian_ids(**cam_args, top_k_contributors=top_k, **common)
        H, W = cam_args["image_height"], cam_args["image_width"]
        ids_t = ids.jdata if hasattr(ids, "jdata") else ids
        w_t = weights.jdata if hasattr(weights, "jdata") else weights
        if ids_t.numel() == num_cams * H * W * top_k:  # dense [C, H, W, K], -1 padded
            ids_t = ids_t.reshape(num_cams, H, W, top_k).long()
            w_t = w_t.reshape(num_cams, H, W, top_k).float()
        else:  # ragged per pixel: pad each pixel's list to K
            offsets = ids.joffsets.long().cpu()
            out_ids = torch.full((num_cams * H * W, top_k), -1, dtype=torch.long)
            out_w = torch.zeros(num_cams * H * W, top_k)
            flat_ids, flat_w = ids_t.long().cpu().flatten(), w_t.float().cpu().flatten()
            for p in range(len(offsets) - 1):
                a, b = int(offsets[p]), int(offsets[p + 1])
                out_ids[p, : b - a] = flat_ids[a:b][:top_k]
                out_w[p, : b - a] = flat_w[a:b][:top_k]
            ids_t, w_t = out_ids.reshape(num_cams, H, W, top_k), out_w.reshape(num_cams, H, W, top_k)
        # strongest first, like the other backends
        w_sorted, order = torch.sort(torch.where(ids_t >= 0, w_t, torch.full_like(w_t, -1.0)), dim=-1, descending=True)
        ids_sorted = torch.gather(ids_t, -1, order)
        return torch.where(w_sorted > 0, ids_sorted, -1), w_sorted.clamp_min(0)

    def pick(self, scene: GaussianScene, camera: Camera, pixel: tuple[float, float], k: int = 8) -> Pick:
        x, y = check_pixel(camera, pixel)
        return pick_from_output(self.render(scene, camera, top_k=k), x, y)
