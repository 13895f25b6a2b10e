"""Capture -> preprocessed views: load the dataset aligned with the splat, run (or read from the
cache) the mask generator and image encoder, and pair the features with the cameras."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import torch

from ovseg_core.data import DatasetConfig, ViewDataset, load_dataset
from ovseg_core.fields.training import CancelFlag, TrainingView
from ovseg_core.models import ImageEncoder, MaskGenerator
from ovseg_core.pipeline.models import build_models
from ovseg_core.pipeline.preflight import preprocess_checked
from ovseg_core.pipeline.progress import PREPROCESS_SHARE, PipelineProgress, Reporter, reporter
from ovseg_core.preprocess import CachedViewFeatures, preprocess_views
from ovseg_core.preprocess.config import PreprocessConfig
from ovseg_core.scene import GaussianScene


@dataclasses.dataclass
class PreparedViews:
    """A loaded capture and its preprocessed views."""

    dataset: ViewDataset
    features: CachedViewFeatures
    """Position ``p`` holds the features of dataset view ``indices[p]``."""
    indices: list[int]
    """The training views first, then the held-out validation views."""
    num_train: int
    mask_generator: MaskGenerator
    image_encoder: ImageEncoder

    def training_views(self) -> tuple[list[TrainingView], list[TrainingView]]:
        """(training views, validation views) with their features as tensors."""
        views = training_views(self.dataset, self.features, self.indices)
        return views[: self.num_train], views[self.num_train :]


def prepare_views(
    scene: GaussianScene,
    dataset_path: str | os.PathLike[str],
    preprocess: PreprocessConfig = PreprocessConfig(),
    *,
    use_every_n_as_val: int = -1,
    mask_generator: MaskGenerator | None = None,
    image_encoder: ImageEncoder | None = None,
    progress: Reporter | None = None,
    cancel: CancelFlag | None = None,
    levels: tuple[int, ...] = (),
) -> PreparedViews:
    """Load the capture at ``dataset_path`` aligned with ``scene`` (its normalisation transform) and
    preprocess every view (masks + CLIP features, cached: training, lifting and instances of one
    capture share the cache entries). Models default to those ``preprocess`` names. ``levels``:
    feature levels that must have masks (a level no view has masks at is refused with a
    ValueError, after the first, middle and last views when none of them has). Reports the
    ``load`` and ``preprocess`` phases (the last with the mask census in ``checked``); raises
    ``Cancelled`` on cancel."""
    report = reporter(progress)
    report(PipelineProgress("load", 0.0, "loading dataset"))
    dataset = load_dataset(
        dataset_path,
        DatasetConfig(
            image_downsample_factor=preprocess.image_downsample_factor, use_every_n_as_val=use_every_n_as_val
        ),
        reconstruction_metadata=scene.metadata,
    )
    if mask_generator is None or image_encoder is None:
        report(PipelineProgress("load", 0.0, "loading SAM2 and OpenCLIP"))
        built_masks, built_encoder = build_models(preprocess)
        mask_generator = mask_generator or built_masks
        image_encoder = image_encoder or built_encoder
    indices = list(dataset.train_indices) + list(dataset.val_indices)

    def on_preprocess(done: int, total: int) -> None:
        fraction = PREPROCESS_SHARE * done / max(total, 1)
        report(PipelineProgress("preprocess", fraction, f"preprocessing view {done}/{total}"))

    checked = preprocess_checked(
        dataset, mask_generator, image_encoder, preprocess, levels, progress=on_preprocess, cancel=cancel
    )
    report(PipelineProgress("preprocess", PREPROCESS_SHARE, checked, checked=checked))
    features = preprocess_views(  # every entry is cached now: this only reads them, in training order
        dataset,
        mask_generator,
        image_encoder,
        preprocess.cache_dir,
        indices=indices,
        cancel=cancel,
        fuse_global=preprocess.concept_fusion,
        fusion_temperature=preprocess.fusion_temperature,
    )
    return PreparedViews(dataset, features, indices, len(dataset.train_indices), mask_generator, image_encoder)


def training_views(dataset: ViewDataset, features: Sequence[Any], indices: Sequence[int]) -> list[TrainingView]:
    """Pair preprocessed features with the dataset cameras (features in ``indices`` order)."""
    out = []
    for i, vf in zip(indices, features):
        view = dataset[i]
        out.append(
            TrainingView(
                name=view.name,
                camera=view.camera,
                features=torch.from_numpy(vf.features).float(),
                # int32: half the memory of int64 (4.6 -> 2.3 GB over 200 LERF-size views)
                seg_maps=torch.from_numpy(vf.seg_maps).int(),
            )
        )
    return out
