"""Preprocessing for language fields: multi-scale masks and CLIP features per view, cached."""

from ovseg_core.preprocess.cache import (
    CACHE_FORMAT_VERSION,
    CachedViewFeatures,
    CacheFileError,
    FeatureCache,
    load_view_features,
)
from ovseg_core.preprocess.crops import mask_crops
from ovseg_core.preprocess.pipeline import compute_view_features, preprocess_views
from ovseg_core.preprocess.view_features import ViewFeatures, build_seg_maps

__all__ = [
    "CACHE_FORMAT_VERSION",
    "CacheFileError",
    "CachedViewFeatures",
    "FeatureCache",
    "ViewFeatures",
    "build_seg_maps",
    "compute_view_features",
    "load_view_features",
    "mask_crops",
    "preprocess_views",
]
