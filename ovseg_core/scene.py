"""The in-memory Gaussian-splat scene every reader, writer and renderer shares."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import numpy as np
import torch

SH_C0 = 0.28209479177387814
"""Zeroth-band spherical-harmonics constant: colour = SH_C0 * sh0 + 0.5."""

MetadataValue = Any  # str | int | float | np.ndarray (fVDB PLY metadata)


@dataclasses.dataclass
class GaussianScene:
    """A 3D Gaussian Splatting scene, activations kept in their stored (pre-activation) form.

    Tensors are float32 on one device. ``extras`` keeps any further per-Gaussian
    properties a file carried (normals, semantic ids, ...) with their original dtypes, so
    they survive a load/save round trip; ``metadata`` keeps file-level key/values
    (fVDB's PLY metadata comments).
    """

    means: torch.Tensor
    """Centres in world space, ``[N, 3]``."""
    quats: torch.Tensor
    """Unit rotations, ``[N, 4]``, (w, x, y, z)."""
    log_scales: torch.Tensor
    """Natural log of the per-axis standard deviations, ``[N, 3]``."""
    logit_opacities: torch.Tensor
    """Opacity before the sigmoid, ``[N]``."""
    sh0: torch.Tensor
    """Zeroth-band SH coefficients, ``[N, 1, D]`` (D = 3 for colour)."""
    shN: torch.Tensor
    """Higher-band SH coefficients, ``[N, K-1, D]``; K = (degree+1)^2, so ``[N, 0, D]`` at degree 0."""
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """Other per-Gaussian properties, each ``[N]``, original dtype, in file order."""
    metadata: dict[str, MetadataValue] = dataclasses.field(default_factory=dict)
    """File-level metadata (strings, numbers, arrays)."""

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        d = self.sh0.shape[-1] if self.sh0.ndim == 3 else -1
        expected = {
            "means": (n, 3),
            "quats": (n, 4),
            "log_scales": (n, 3),
            "logit_opacities": (n,),
            "sh0": (n, 1, d),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"GaussianScene.{name} must have shape {list(shape)}, got {list(got)}")
        if self.shN.ndim != 3 or self.shN.shape[0] != n or self.shN.shape[2] != d:
            raise ValueError(f"GaussianScene.shN must have shape [N, K-1, {d}], got {list(self.shN.shape)}")
        num_bases = self.shN.shape[1] + 1
        degree = math.isqrt(num_bases) - 1
        if (degree + 1) ** 2 != num_bases or degree > 4:
            raise ValueError(
                f"GaussianScene.shN has {num_bases - 1} coefficients per channel; expected 0, 3, 8, 15 or 24"
            )
        for key, value in self.extras.items():
            if value.shape != (n,):
                raise ValueError(f"extra property {key!r} must have shape [{n}], got {list(value.shape)}")

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.sh0.shape[-1])

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.shN.shape[1] + 1) - 1

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def scales(self) -> torch.Tensor:
        """Per-axis standard deviations, ``[N, 3]``."""
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        """Opacities in [0, 1], ``[N]``."""
        return torch.sigmoid(self.logit_opacities)

    @property
    def base_colors(self) -> torch.Tensor:
        """View-independent RGB from the zeroth band, ``[N, D]`` (unclamped)."""
        return SH_C0 * self.sh0[:, 0, :] + 0.5

    def to(self, device: torch.device | str) -> GaussianScene:
        return dataclasses.replace(
            self,
            **{name: getattr(self, name).to(device) for name in _TENSOR_FIELDS},
        )

    def subset(self, keep: torch.Tensor | np.ndarray) -> GaussianScene:
        """The Gaussians selected by a boolean mask ``[N]`` or an id array, extras included."""
        keep_t = torch.as_tensor(np.asarray(keep.cpu() if isinstance(keep, torch.Tensor) else keep))
        if keep_t.dtype == torch.bool:
            if keep_t.shape != (self.num_gaussians,):
                raise ValueError(f"selection mask must have shape [{self.num_gaussians}], got {list(keep_t.shape)}")
            ids = torch.nonzero(keep_t).flatten()
        else:
            ids = keep_t.long().flatten()
            if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_gaussians):
                raise ValueError(f"selection ids must lie in [0, {self.num_gaussians}), got {ids.min()}..{ids.max()}")
        ids_np = ids.numpy()
        dev_ids = ids.to(self.device)
        return dataclasses.replace(
            self,
            **{name: getattr(self, name)[dev_ids] for name in _TENSOR_FIELDS},
            extras={k: v[ids_np] for k, v in self.extras.items()},
            metadata=dict(self.metadata),
        )

    def check_same(self, fingerprint: str, num_gaussians: int, what: str, remedy: str) -> None:
        """Raise ``FieldMismatchError`` unless this is the splat (``fingerprint``, ``num_gaussians``)
        that ``what`` (e.g. "language fields in x.pt were trained") refers to; ``remedy`` says what to do."""
        from ovseg_core.errors import FieldMismatchError

        fp = self.fingerprint()
        if self.num_gaussians != num_gaussians or fp != fingerprint:
            raise FieldMismatchError(
                f"{what} on a splat with {num_gaussians} Gaussians (fingerprint {fingerprint}); this scene "
                f"has {self.num_gaussians} (fingerprint {fp}). {remedy}"
            )

    def fingerprint(self) -> str:
        """A short hash of the geometry (means, quats, scales, opacities): identifies the splat."""
        h = hashlib.sha256()
        for name in ("means", "quats", "log_scales", "logit_opacities"):
            h.update(getattr(self, name).detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Robust scene bounds (1st/99th percentile of the means), each ``[3]`` float64 (so that
        ``hi - lo`` of far-apart float32 coordinates cannot overflow to Inf)."""
        m = self.means.detach().cpu().numpy().astype(np.float64)
        return np.percentile(m, 1, axis=0), np.percentile(m, 99, axis=0)


_TENSOR_FIELDS = ("means", "quats", "log_scales", "logit_opacities", "sh0", "shN")


def make_scene(
    means: Any,
    quats: Any,
    log_scales: Any,
    logit_opacities: Any,
    sh0: Any,
    shN: Any | None = None,
    *,
    extras: dict[str, np.ndarray] | None = None,
    metadata: dict[str, MetadataValue] | None = None,
    normalize_quats: bool = True,
) -> GaussianScene:
    """Build a scene from array-likes, casting to float32 and normalising quaternions.

    ``sh0`` may be ``[N, D]`` or ``[N, 1, D]``; ``shN`` defaults to degree 0.
    """
    t = lambda a: torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a, dtype=torch.float32)  # noqa: E731
    sh0_t = t(sh0)
    if sh0_t.ndim == 2:
        sh0_t = sh0_t[:, None, :]
    shN_t = t(shN) if shN is not None else torch.zeros(sh0_t.shape[0], 0, sh0_t.shape[-1])
    quats_t = t(quats)
    if normalize_quats:
        quats_t = normalize_quaternions(quats_t)
    return GaussianScene(
        means=t(means),
        quats=quats_t,
        log_scales=t(log_scales),
        logit_opacities=t(logit_opacities).reshape(-1),
        sh0=sh0_t,
        shN=shN_t,
        extras=dict(extras or {}),
        metadata=dict(metadata or {}),
    )


def normalize_quaternions(quats: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``[N, 4]``; a zero quaternion becomes the identity (1, 0, 0, 0)."""
    norm = quats.norm(dim=-1, keepdim=True)
    identity = torch.zeros_like(quats)
    identity[..., 0] = 1.0
    return torch.where(norm > 0, quats / norm.clamp_min(1e-30), identity)
