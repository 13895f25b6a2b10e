"""Spatially consistent selections of Gaussians: a neighbourhood graph over Gaussian centres,
relevancy smoothed and filled in over it, and connected components that drop isolated strays."""

from ovseg_core.selection.consistency import (
    SelectionConfig,
    consistent_selection,
    grow_from_seed,
    propagate_labels,
)
from ovseg_core.selection.graph import GaussianGraph, build_graph, connected_within

__all__ = [
    "GaussianGraph",
    "SelectionConfig",
    "build_graph",
    "connected_within",
    "consistent_selection",
    "grow_from_seed",
    "propagate_labels",
]
