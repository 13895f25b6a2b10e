"""Settings of spatially consistent selections (no torch: CLIs parse them before torch loads)."""

from __future__ import annotations

import dataclasses

from ovseg_core.errors import UsageError

DEFAULT_THRESHOLD = 0.5
"""Relevancy above which a Gaussian answers a prompt (``ovseg query``, the viewer, ``ovseg_core.segment``)."""


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
    """Spatial consistency of prompt and click selections."""

    enabled: bool = True
    """Off: a selection is exactly the Gaussians above the threshold."""
    neighbours: int = 12
    """Nearest Gaussians each one may link to."""
    link_factor: float = 1.5
    """Two Gaussians link when their centres are within this times the sum of their largest sigmas."""
    colour_affinity: bool = True
    """Links weigh how alike their ends' colours are (off: every link weighs 1)."""
    neighbourhood_weight: float = 1.0
    """How much a Gaussian's neighbourhood counts against its own evidence (what its views said
    about it, ``fields.backprojection``), in units of the median seen Gaussian's evidence: 1 lets a Gaussian seen as
    well as the median one weigh its own score like all its neighbours together, so faint, buried
    and unseen Gaussians follow their neighbourhood. 0: each Gaussian alone (unseen: unselected)."""
    min_component: int = 20
    """Connected pieces of the selection with fewer Gaussians are dropped."""
    min_component_fraction: float = 0.05
    """... and pieces smaller than this fraction of the largest piece."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.neighbourhood_weight < float("inf"):
            raise UsageError(f"neighbourhood_weight must be finite and >= 0, got {self.neighbourhood_weight}")
        if not 0.0 <= self.min_component_fraction <= 1.0:
            raise UsageError(f"min_component_fraction must lie in [0, 1], got {self.min_component_fraction}")
        for name in ("neighbours", "min_component"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
