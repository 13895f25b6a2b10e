"""Capture datasets for training: views (cameras aligned with the reconstruction) and photos."""

from ovseg_core.data.config import DatasetConfig
from ovseg_core.data.normalization import (
    normalization_from_metadata,
    similarity_parts,
    transform_camera,
    transform_points,
)
from ovseg_core.data.view_dataset import View, ViewDataset, load_dataset

__all__ = [
    "DatasetConfig",
    "View",
    "ViewDataset",
    "load_dataset",
    "normalization_from_metadata",
    "similarity_parts",
    "transform_camera",
    "transform_points",
]
