"""Preprocessing for language fields: multi-scale masks and CLIP features per view, cached; its
settings (``config``), the cache (the only reader and writer of its files) and the mask census.

Names load on first use (importing ``ovseg_core.preprocess.config`` does not import torch)."""

from __future__ import annotations

from ovseg_core._lazy import lazy_exports

_EXPORTS = {
    "CACHE_FORMAT_VERSION": "ovseg_core.preprocess.cache",
    "CacheFileError": "ovseg_core.preprocess.cache",
    "CachedViewFeatures": "ovseg_core.preprocess.cache",
    "FeatureCache": "ovseg_core.preprocess.cache",
    "MaskCensus": "ovseg_core.preprocess.census",
    "PreprocessConfig": "ovseg_core.preprocess.config",
    "RayConfig": "ovseg_core.preprocess.config",
    "ViewFeatures": "ovseg_core.preprocess.view_features",
    "build_seg_maps": "ovseg_core.preprocess.view_features",
    "compute_view_features": "ovseg_core.preprocess.pipeline",
    "load_view_features": "ovseg_core.preprocess.cache",
    "mask_crops": "ovseg_core.preprocess.crops",
    "preprocess_views": "ovseg_core.preprocess.pipeline",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
