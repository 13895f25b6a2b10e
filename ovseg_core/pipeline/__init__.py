"""The pipeline from a capture to results: dataset -> preprocessing (SAM2 masks + CLIP features,
cached) -> LangSplatV2 training, feature lifting or 3D instances. The ``ovseg train`` CLIs and the
viewer's training job both run these functions.

Names load on first use (importing ``ovseg_core.pipeline`` does not import torch)."""

from __future__ import annotations

from ovseg_core._lazy import lazy_exports

_EXPORTS = {
    "PipelineProgress": "ovseg_core.pipeline.progress",
    "PipelineResult": "ovseg_core.pipeline.language",
    "PreprocessConfig": "ovseg_core.preprocess.config",
    "PreparedViews": "ovseg_core.pipeline.views",
    "build_instances_from_dataset": "ovseg_core.pipeline.instances",
    "build_models": "ovseg_core.pipeline.models",
    "prepare_views": "ovseg_core.pipeline.views",
    "train_from_dataset": "ovseg_core.pipeline.language",
    "training_views": "ovseg_core.pipeline.views",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
