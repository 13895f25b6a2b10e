"""Plain-PyTorch tiled rasteriser: slow, simple, differentiable, any device. The test oracle."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ovseg_core.camera import Camera
from ovseg_core.render.base import (
    ALPHA_MAX,
    ALPHA_MIN,
    TRANSMITTANCE_MIN,
    Pick,
    RenderOutput,
    RenderSettings,
    as_camera_batch,
    check_features,
    pick_by_tile,
)
from ovseg_core.render.projection import Projection, covariances, project_gaussians, sh_colors
from ovseg_core.scene import GaussianScene


def tile_ranges(proj: Projection, tile_size: int, tiles_x: int, tiles_y: int) -> torch.Tensor:
    """Tile rectangle [x0, y0, x1, y1) each Gaussian touches by its radius, ``[N, 4]`` int64 (gsplat's rule)."""
    m = proj.means2d.detach() / tile_size
    r = proj.radii.to(m.dtype) / tile_size
    lo = torch.floor(m - r).long()
    hi = torch.ceil(m + r).long()
    lo[:, 0].clamp_(0, tiles_x)
    hi[:, 0].clamp_(0, tiles_x)
    lo[:, 1].clamp_(0, tiles_y)
    hi[:, 1].clamp_(0, tiles_y)
    visible = (proj.radii > 0).all(dim=1)
    hi = torch.where(visible[:, None], hi, lo)
    return torch.cat([lo, hi], dim=1)


class TorchRenderer:
    """Reference renderer: per tile, dense alpha over the tile's depth-sorted Gaussians."""

    name = "torch"

    def __init__(self, settings: RenderSettings | None = None, *, device: str | torch.device = "cpu") -> None:
        self.settings = settings or RenderSettings()
        self.device = torch.device(device)

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
        scene = scene.to(self.device)
        feats = features.to(self.device, torch.float32) if features is not None else None
        outs = [self._render_one(scene, cam, feats, top_k, tiles) for cam in cams]
        stack = lambda key: torch.stack([getattr(o, key) for o in outs])  # noqa: E731
        return RenderOutput(
            rgb=stack("rgb"),
            alpha=stack("alpha"),
            depth=stack("depth"),
            features=stack("features") if feats is not None else None,
            contrib_ids=stack("contrib_ids") if top_k > 0 else None,
            contrib_weights=stack("contrib_weights") if top_k > 0 else None,
        )

    def pick(self, scene: GaussianScene, camera: Camera, pixel: tuple[float, float], k: int = 8) -> Pick:
        return pick_by_tile(self, scene, camera, pixel, k)

    def _render_one(
        self,
        scene: GaussianScene,
        cam: Camera,
        feats: torch.Tensor | None,
        top_k: int,
        tiles: Sequence[tuple[int, int]] | None,
    ) -> RenderOutput:
        s, dev = self.settings, self.device
        W, H, T = cam.width, cam.height, s.tile_size
        w2c = torch.as_tensor(cam.w2c, dtype=torch.float32, device=dev)
        K = torch.as_tensor(cam.K, dtype=torch.float32, device=dev)
        proj = project_gaussians(scene.means, covariances(scene.quats, scene.log_scales), w2c, K, W, H, s)
        degree = scene.sh_degree if s.sh_degree < 0 else s.sh_degree
        cam_pos = torch.as_tensor(cam.position, dtype=torch.float32, device=dev)
        colors = sh_colors(scene.sh0, scene.shN, scene.means - cam_pos, degree)
        opacities = scene.opacities
        # Channels blended together: colour, depth, features.
        values = torch.cat([colors, proj.depths[:, None]] + ([feats] if feats is not None else []), dim=1)
        C = values.shape[1]

        tiles_x, tiles_y = math.ceil(W / T), math.ceil(H / T)
        rect = tile_ranges(proj, T, tiles_x, tiles_y)
        order = torch.argsort(proj.depths.detach(), stable=True)
        rect_sorted = rect[order]

        out = values.new_zeros(H, W, C)
        trans = values.new_ones(H, W)
        ids_img = torch.full((H, W, top_k), -1, dtype=torch.int64, device=dev)
        w_img = values.new_zeros(H, W, top_k)
        todo = tiles if tiles is not None else [(tx, ty) for ty in range(tiles_y) for tx in range(tiles_x)]
        for tx, ty in todo:
            hit = (
                (rect_sorted[:, 0] <= tx)
                & (tx < rect_sorted[:, 2])
                & (rect_sorted[:, 1] <= ty)
                & (ty < rect_sorted[:, 3])
            )
            gids = order[hit]
            x0, y0 = tx * T, ty * T
            x1, y1 = min(x0 + T, W), min(y0 + T, H)
            if gids.numel() == 0:
                continue
            py, px = torch.meshgrid(
                torch.arange(y0, y1, device=dev, dtype=torch.float32) + 0.5,
                torch.arange(x0, x1, device=dev, dtype=torch.float32) + 0.5,
                indexing="ij",
            )
            pix = torch.stack([px.reshape(-1), py.reshape(-1)], dim=1)  # [P, 2]
            d = proj.means2d[gids][None, :, :] - pix[:, None, :]  # [P, G, 2]
            a, b, c = proj.conics[gids].unbind(-1)
            sigma = 0.5 * (a * d[..., 0] ** 2 + c * d[..., 1] ** 2) + b * d[..., 0] * d[..., 1]
            alpha = torch.clamp(opacities[gids] * torch.exp(-sigma), max=ALPHA_MAX)
            alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
            one_minus = 1 - alpha
            t_after = torch.cumprod(one_minus, dim=1)
            t_before = torch.cat([torch.ones_like(t_after[:, :1]), t_after[:, :-1]], dim=1)
            keep = t_after > TRANSMITTANCE_MIN  # monotone: once a pixel stops, nothing after counts
            weights = torch.where(keep, alpha * t_before, torch.zeros_like(alpha))
            tile_vals = weights @ values[gids]  # [P, C]
            final_t = torch.where(keep, one_minus, torch.ones_like(one_minus)).prod(dim=1)
            out[y0:y1, x0:x1] = tile_vals.reshape(y1 - y0, x1 - x0, C)
            trans[y0:y1, x0:x1] = final_t.reshape(y1 - y0, x1 - x0)
            if top_k > 0:
                k = min(top_k, gids.numel())
                w_top, idx = torch.topk(weights.detach(), k, dim=1)
                ids_top = torch.where(w_top > 0, gids[idx], torch.full_like(idx, -1))
                ids_img[y0:y1, x0:x1, :k] = ids_top.reshape(y1 - y0, x1 - x0, k)
                w_img[y0:y1, x0:x1, :k] = torch.where(w_top > 0, w_top, torch.zeros_like(w_top)).reshape(
                    y1 - y0, x1 - x0, k
                )
        alpha_img = 1 - trans
        bg = torch.as_tensor(s.background, dtype=values.dtype, device=dev)
        rgb = out[..., :3] + trans[..., None] * bg
        depth = torch.where(alpha_img > 0, out[..., 3] / alpha_img.clamp_min(1e-12), torch.zeros_like(alpha_img))
        return RenderOutput(
            rgb=rgb,
            alpha=alpha_img[..., None],
            depth=depth[..., None],
            features=out[..., 4:] if feats is not None else None,
            contrib_ids=ids_img,
            contrib_weights=w_img,
        )
