"""Pure-PyTorch EWA projection of 3D Gaussians and SH colour: the reference math.

Differentiable, any device. The CPU rasteriser has its own numba twin of this; tests hold
both to this module and this module to gsplat's independent torch implementation.
"""

from __future__ import annotations

import dataclasses

import torch

from ovseg_core.render.base import RADIUS_SIGMAS, RenderSettings
from ovseg_core.scene import SH_C0

_SH1 = 0.4886025119029199
_SH2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_SH3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


@dataclasses.dataclass
class Projection:
    """Per-Gaussian screen-space quantities for one camera."""

    means2d: torch.Tensor
    """Projected centres in pixels, ``[N, 2]``."""
    conics: torch.Tensor
    """Inverse 2D covariance (a, b, c) of [[a, b], [b, c]], ``[N, 3]``."""
    depths: torch.Tensor
    """Camera-space z, ``[N]``."""
    radii: torch.Tensor
    """Per-axis pixel radius ceil(3.33 sigma), 0 where culled, ``[N, 2]`` int32."""
    cov2d: torch.Tensor
    """2D covariance including eps_2d, ``[N, 2, 2]``."""


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[N, 3, 3]`` from (w, x, y, z) quaternions ``[N, 4]`` (normalised here)."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))  # fmt: skip


def covariances(quats: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """World-space 3D covariances R S S R^T, ``[N, 3, 3]``."""
    m = quat_to_rotmat(quats) * torch.exp(log_scales)[..., None, :]
    return m @ m.transpose(-1, -2)


def project_gaussians(
    means: torch.Tensor,  # [N, 3]
    covars: torch.Tensor,  # [N, 3, 3]
    w2c: torch.Tensor,  # [4, 4]
    K: torch.Tensor,  # [3, 3]
    width: int,
    height: int,
    settings: RenderSettings,
) -> Projection:
    """Perspective EWA projection with fVDB/gsplat culling (near/far, det <= 0, off-screen)."""
    R, t = w2c[:3, :3], w2c[:3, 3]
    means_c = means @ R.T + t
    covars_c = R @ covars @ R.T
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tx, ty, tz = means_c.unbind(-1)
    # Clamp the Jacobian's evaluation point to 1.3x the frustum, as 3DGS does, so Gaussians far
    # outside the view do not get exploding footprints.
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    safe_z = torch.where(tz.abs() > 1e-12, tz, torch.full_like(tz, 1e-12))
    txc = safe_z * torch.clamp(tx / safe_z, -lim_x_neg, lim_x_pos)
    tyc = safe_z * torch.clamp(ty / safe_z, -lim_y_neg, lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack(
        [fx / safe_z, zero, -fx * txc / safe_z**2, zero, fy / safe_z, -fy * tyc / safe_z**2], dim=-1
    ).reshape(-1, 2, 3)
    cov2d = J @ covars_c @ J.transpose(-1, -2)
    cov2d = cov2d + settings.eps_2d * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
    means2d = torch.stack([fx * tx / safe_z + cx, fy * ty / safe_z + cy], dim=-1)
    det = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
    det_safe = det.clamp_min(1e-10)
    conics = torch.stack(
        [cov2d[:, 1, 1] / det_safe, -0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0]) / det_safe, cov2d[:, 0, 0] / det_safe],
        dim=-1,
    )
    with torch.no_grad():
        radii = torch.stack(
            [
                torch.ceil(RADIUS_SIGMAS * torch.sqrt(cov2d[:, 0, 0].clamp_min(0))),
                torch.ceil(RADIUS_SIGMAS * torch.sqrt(cov2d[:, 1, 1].clamp_min(0))),
            ],
            dim=-1,
        )
        valid = (det > 0) & (tz > settings.near) & (tz < settings.far)
        inside = (
            (means2d[:, 0] + radii[:, 0] > 0)
            & (means2d[:, 0] - radii[:, 0] < width)
            & (means2d[:, 1] + radii[:, 1] > 0)
            & (means2d[:, 1] - radii[:, 1] < height)
        )
        radii = torch.where((valid & inside)[:, None], radii, torch.zeros_like(radii)).to(torch.int32)
    return Projection(means2d=means2d, conics=conics, depths=tz, radii=radii, cov2d=cov2d)


def sh_colors(sh0: torch.Tensor, shN: torch.Tensor, dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Evaluate SH colour C0*sh0 + higher bands + 0.5 (no clamp), ``[N, D]``.

    Args:
        sh0: ``[N, 1, D]``; shN: ``[N, K-1, D]``; dirs: view directions mean - camera centre ``[N, 3]``.
        degree: highest band to use (bounded by what shN holds).
    """
    out = SH_C0 * sh0[:, 0, :]
    degree = min(degree, int(round((shN.shape[1] + 1) ** 0.5)) - 1)
    if degree >= 1:
        d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        x, y, z = (d[:, i : i + 1] for i in range(3))
        out = out + _SH1 * (-y * shN[:, 0] + z * shN[:, 1] - x * shN[:, 2])
        if degree >= 2:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out = (
                out
                + _SH2[0] * xy * shN[:, 3]
                + _SH2[1] * yz * shN[:, 4]
                + _SH2[2] * (2 * zz - xx - yy) * shN[:, 5]
                + _SH2[3] * xz * shN[:, 6]
                + _SH2[4] * (xx - yy) * shN[:, 7]
            )
            if degree >= 3:
                out = (
                    out
                    + _SH3[0] * y * (3 * xx - yy) * shN[:, 8]
                    + _SH3[1] * xy * z * shN[:, 9]
                    + _SH3[2] * y * (4 * zz - xx - yy) * shN[:, 10]
                    + _SH3[3] * z * (2 * zz - 3 * xx - 3 * yy) * shN[:, 11]
                    + _SH3[4] * x * (4 * zz - xx - yy) * shN[:, 12]
                    + _SH3[5] * z * (xx - yy) * shN[:, 13]
                    + _SH3[6] * x * (xx - 3 * yy) * shN[:, 14]
                )
    return out + 0.5
