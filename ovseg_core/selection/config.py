"""Settings of spatially consistent selections (no torch: CLIs parse them before torch loads)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
    """Spatial consistency of prompt and click selections."""

    enabled: bool = True
    """Off: a selection is exactly the Gaussians above the threshold."""
    neighbours: int = 12
    """Nearest Gaussians each one may link to."""
    link_factor: float = 1.5
    """Two Gaussians link when their centres are within this times the sum of their largest sigmas."""
    smoothing: int = 0
    """Rounds of neighbourhood smoothing of seen Gaussians' scores (0: none; on ``ovseg-bench
    quality`` it pulls floor Gaussians under objects in and costs ~0.005 IoU, so it is off)."""
    smoothing_weight: float = 0.5
    """How much of a Gaussian's smoothed score comes from its neighbours."""
    fill_rounds: int = 50
    """Rounds that spread scores into Gaussians no view showed (0: they stay unselected)."""
    min_component: int = 20
    """Connected pieces of the selection with fewer Gaussians are dropped."""
    min_component_fraction: float = 0.05
    """... and pieces smaller than this fraction of the largest piece."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing_weight <= 1.0:
            raise ValueError(f"smoothing_weight must lie in [0, 1], got {self.smoothing_weight}")
        if not 0.0 <= self.min_component_fraction <= 1.0:
            raise ValueError(f"min_component_fraction must lie in [0, 1], got {self.min_component_fraction}")
        for name in ("neighbours", "smoothing", "fill_rounds", "min_component"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
