"""What every renderer shares: its protocol, settings and output (a leaf module: backends and
callers import it, it imports no backend). Semantics follow fVDB's rasteriser:

- pixel centres at (col + 0.5, row + 0.5); 2D covariance + ``eps_2d`` * I;
- alpha = min(0.99, opacity * exp(-sigma)); a Gaussian is skipped where sigma < 0 or alpha < 1/255;
- front to back by depth; a pixel stops before the Gaussian that would bring its transmittance
  to 1e-4 or below (that Gaussian is not composited);
- per-axis radius ceil(3.33 * sqrt(cov2d_ii)); 16-pixel tiles a Gaussian touches by that radius.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ovseg_core.errors import UsageError

if TYPE_CHECKING:  # torch loads with the first backend, not with the CLIs that name one
    import torch

    from ovseg_core.camera import Camera
    from ovseg_core.scene import GaussianScene

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
TRANSMITTANCE_MIN = 1e-4
RADIUS_SIGMAS = 3.33


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """How every backend rasterises (defaults are fVDB's)."""

    near: float = 0.01
    """Gaussians with camera depth <= near are culled."""
    far: float = 1e10
    """Gaussians with camera depth >= far are culled."""
    eps_2d: float = 0.3
    """Added to the projected 2D covariance's diagonal (pixels^2), as in 3DGS."""
    sh_degree: int = -1
    """Highest SH band to evaluate; -1 uses all the scene has."""
    tile_size: int = 16
    """Square tile edge in pixels (binning granularity)."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB composited behind the Gaussians (features and depth use zero)."""

    def __post_init__(self) -> None:
        if not 0 < self.near < self.far:
            raise UsageError(f"need 0 < near < far, got near={self.near}, far={self.far}")
        if self.eps_2d < 0:
            raise UsageError(f"eps_2d must be >= 0, got {self.eps_2d}")
        if self.tile_size not in (8, 16, 32):
            raise UsageError(f"tile_size must be 8, 16 or 32, got {self.tile_size}")


@dataclasses.dataclass
class RenderOutput:
    """What a render of C cameras of one size returns (torch tensors on the renderer's device)."""

    rgb: torch.Tensor
    """View-dependent colour over the background, ``[C, H, W, 3]`` (unclamped)."""
    alpha: torch.Tensor
    """Accumulated opacity 1 - T, ``[C, H, W, 1]``."""
    depth: torch.Tensor
    """Expected camera-space depth sum(w z) / alpha (0 where alpha = 0), ``[C, H, W, 1]``."""
    features: torch.Tensor | None = None
    """Per-Gaussian features blended like colour, sum(w f), ``[C, H, W, D]``; None if not asked for."""
    contrib_ids: torch.Tensor | None = None
    """Top-K contributing Gaussian ids by blending weight (descending), -1 = none, ``[C, H, W, K]`` int64."""
    contrib_weights: torch.Tensor | None = None
    """Blending weights w = alpha * T of ``contrib_ids``, 0 where none, ``[C, H, W, K]``."""


@dataclasses.dataclass
class Pick:
    """The Gaussians in front under one pixel, strongest blending weight first."""

    ids: torch.Tensor
    """``[M]`` int64, M <= k."""
    weights: torch.Tensor
    """``[M]`` blending weights."""
    depth: float
    """Expected depth at the pixel (0 if nothing is there)."""


@runtime_checkable
class Renderer(Protocol):
    """Renders a scene from cameras; ``name`` is its backend's name in ``ovseg_core.render.BACKENDS``."""

    name: str
    settings: RenderSettings

    def render(
        self,
        scene: GaussianScene,
        cameras: Camera | Sequence[Camera],
        *,
        features: torch.Tensor | None = None,
        top_k: int = 0,
    ) -> RenderOutput:
        """Render RGB, alpha, depth, optional ``features`` ``[N, D]`` and top-``k`` contributions."""
        ...

    def pick(self, scene: GaussianScene, camera: Camera, pixel: tuple[float, float], k: int = 8) -> Pick:
        """The front Gaussians under ``pixel`` = (x, y) in pixel coordinates."""
        ...
