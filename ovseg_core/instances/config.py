"""Settings of 2D-mask -> 3D-instance lifting (OpenMask3D-style, class-agnostic)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from ovseg_core.errors import UsageError
from ovseg_core.models.protocols import SCALES


@dataclasses.dataclass(frozen=True)
class InstanceConfig:
    """How view masks become Gaussian sets and how those sets merge into instances."""

    scale: str = "default"
    """Mask scale to lift (one of ``SCALES``): ``default`` = every mask the generator produced."""
    min_contribution: float = 1.0 / 1024.0
    """Blending contributions below this weight are ignored; every one above it is taken (the
    renderer is asked for ceil(1 / min_contribution) per pixel, since weights sum to <= 1; views
    render in bands to bound memory). Faint Gaussians add up inside a mask from many small
    contributions: on ``ovseg-bench quality`` 1/256 covers 0.91 of the objects, 1/1024 0.96."""
    min_inside_fraction: float = 0.5
    """A Gaussian joins a view mask when at least this fraction of the blending weight it puts on
    the whole view falls inside the mask (edge Gaussians straddling two masks join at most one)."""
    relative_weight: float = 0.05
    """... and the weight inside the mask (alpha * T summed over the mask's pixels) is at least
    this fraction of the Gaussian's total weight in the view that shows it best. Occluded Gaussians
    put a tiny, noisy weight everywhere; without a floor their fraction would be meaningless and
    they would join whatever object hides them. The same floor decides whether a Gaussian counts
    as visible in a view. Relative, because real splats are faint: a fixed floor drops them."""
    min_inside_weight: float = 0.0005
    """Absolute lower bound of that floor."""
    fill_hidden: bool = True
    """Gaussians that no view shows (undersides, insides) join the instance most of their
    neighbours (``ovseg_core.selection`` graph) hold."""
    neighbour_weight: float = 0.9
    """After merging, each Gaussian's instance is refined over the scene's neighbourhood graph
    (label spreading, ``ovseg_core.instances.refine``): its score for an instance is this share
    its neighbours' scores (links weighted by colour affinity) and the rest the share of its views
    whose masks of that instance hold it. Gaussians the views split on (an object's base, which
    the table in front of it outweighs at low angles) follow their neighbours; ones the views agree
    on keep their answer. 0: labels from the views' claims alone. On ``ovseg-bench quality``
    coverage rises for every value from 0.5 to 0.99 on both cases; 0.9 is mid-range."""
    min_mask_gaussians: int = 3
    """View masks lifting to fewer Gaussians are ignored (specks, or masks of empty space)."""
    iou_threshold: float = 0.4
    """Two view masks (or two instances) merge when their Gaussian sets overlap with IoU >= this."""
    consensus: float = 0.5
    """An instance keeps a Gaussian only if, of its masks whose views see that Gaussian, at least
    this fraction contain it (a single bad mask cannot drag neighbours in)."""
    max_merge_rounds: int = 10
    """Rounds of instance-level re-merging after the mask-level pass."""
    min_views: int = 3
    """Drop instances supported by masks from fewer views than this."""
    min_gaussians: int = 10
    """Drop instances holding fewer Gaussians than this (after claims are resolved)."""
    voting_backend: Literal["auto", "scipy", "torch"] = "auto"
    """Where each view's Gaussians vote their blending weight into its masks: ``scipy`` (sparse
    products on the CPU), ``torch`` (on the scene's device), ``auto``: torch when the scene is on
    a GPU, else scipy."""

    @property
    def top_k(self) -> int:
        """Contributions asked of the renderer per pixel."""
        return math.ceil(1.0 / self.min_contribution - 1e-9)

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise UsageError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        for name in ("min_inside_fraction", "iou_threshold", "consensus"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise UsageError(f"{name} must lie in (0, 1], got {v}")
        if not 0.0 < self.min_contribution <= 1.0:
            raise UsageError(f"min_contribution must lie in (0, 1], got {self.min_contribution}")
        if not 0.0 <= self.neighbour_weight < 1.0:
            raise UsageError(f"neighbour_weight must lie in [0, 1), got {self.neighbour_weight}")
        if not 0.0 <= self.relative_weight <= 1.0:
            raise UsageError(f"relative_weight must lie in [0, 1], got {self.relative_weight}")
        if self.min_inside_weight < 0:
            raise UsageError(f"min_inside_weight must be >= 0, got {self.min_inside_weight}")
        for name in ("min_views", "min_gaussians", "min_mask_gaussians"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be positive, got {getattr(self, name)}")
