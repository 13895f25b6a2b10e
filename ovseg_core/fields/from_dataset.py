"""Dataset -> preprocessing (masks + CLIP features, cached) -> LangSplatV2 training, as one call
that the ``ovseg-train`` CLI and the viewer's training panel share."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

from ovseg_core.data import DatasetConfig, ViewDataset, load_dataset
from ovseg_core.fields.config import IOConfig, PreprocessConfig
from ovseg_core.fields.language_fields import LanguageFields
from ovseg_core.fields.lifting import LiftConfig
from ovseg_core.fields.run_directory import RunDirectory
from ovseg_core.fields.training import (
    CancelFlag,
    LanguageFieldTrainer,
    LanguageTrainConfig,
    TrainingView,
    TrainProgress,
)
from ovseg_core.models import ImageEncoder, MaskGenerator
from ovseg_core.preprocess import preprocess_views
from ovseg_core.render.base import Renderer
from ovseg_core.scene import GaussianScene


@dataclasses.dataclass
class PipelineProgress:
    """Progress of a whole run: phase ``load``, ``preprocess`` or ``train``."""

    phase: str
    fraction: float
    """Overall fraction done (preprocessing counts as the first 30%)."""
    message: str
    train: TrainProgress | None = None


@dataclasses.dataclass
class PipelineResult:
    fields: LanguageFields
    run_dir: Path | None
    checkpoint: Path | None
    history: list[dict[str, float]]
    initial_losses: dict[int, float]
    """Level -> mean masked cosine loss over the training views before training."""
    final_losses: dict[int, float]


PREPROCESS_SHARE = 0.3


def build_models(config: PreprocessConfig) -> tuple[MaskGenerator, ImageEncoder]:
    """The configured SAM2 + OpenCLIP (or their tiny random twins)."""
    from ovseg_core.models import OpenClipEncoder, Sam2MaskGenerator, tiny_open_clip, tiny_sam2

    if config.tiny_models:
        return tiny_sam2(), tiny_open_clip()
    return Sam2MaskGenerator.from_config(config.sam2), OpenClipEncoder.from_config(config.clip)


def training_views(dataset: ViewDataset, features: Any, indices: list[int]) -> list[TrainingView]:
    """Pair preprocessed features with the dataset cameras (features in ``indices`` order)."""
    out = []
    for i, vf in zip(indices, features):
        view = dataset[i]
        out.append(
            TrainingView(
                name=view.name,
                camera=view.camera,
                features=torch.from_numpy(vf.features).float(),
                seg_maps=torch.from_numpy(vf.seg_maps).long(),
            )
        )
    return out


def train_from_dataset(
    scene: GaussianScene,
    dataset_path: str | os.PathLike[str],
    *,
    config: LanguageTrainConfig = LanguageTrainConfig(),
    preprocess: PreprocessConfig = PreprocessConfig(),
    use_every_n_as_val: int = -1,
    log_path: str | os.PathLike[str] | None = None,
    run_name: str | None = None,
    io: IOConfig = IOConfig(),
    mask_generator: MaskGenerator | None = None,
    image_encoder: ImageEncoder | None = None,
    renderer: Renderer | None = None,
    progress: Callable[[PipelineProgress], None] | None = None,
    cancel: CancelFlag | None = None,
    device_lock: Any = None,
    method: Literal["langsplatv2", "lift"] = "langsplatv2",
    lift: LiftConfig = LiftConfig(),
) -> PipelineResult:
    """Load the dataset aligned with ``scene`` (its normalisation transform), preprocess (cached),
    then train LangSplatV2 fields (``method="langsplatv2"``) or lift the 2D features without
    training (``"lift"``, OpenScene-style), and write the run directory when ``log_path`` is
    given. Raises ``Cancelled`` on cancel."""
    if method not in ("langsplatv2", "lift"):
        raise ValueError(f"unknown method {method!r}; choose langsplatv2 or lift")

    def report(p: PipelineProgress) -> None:
        if progress is not None:
            progress(p)

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
        report(
            PipelineProgress(
                "preprocess", PREPROCESS_SHARE * done / max(total, 1), f"preprocessing view {done}/{total}"
            )
        )

    features = preprocess_views(
        dataset,
        mask_generator,
        image_encoder,
        preprocess.cache_dir,
        indices=indices,
        progress=on_preprocess,
        cancel=cancel,
        fuse_global=preprocess.concept_fusion,
        fusion_temperature=preprocess.fusion_temperature,
    )
    views = training_views(dataset, features, indices)
    n_train = len(dataset.train_indices)
    train_views, val_views = views[:n_train], views[n_train:]

    writer = (
        RunDirectory(
            log_path,
            run_name,
            use_tensorboard=io.use_tensorboard,
            save_images=io.save_images,
            save_checkpoints=io.save_checkpoints,
        )
        if log_path is not None
        else None
    )

    if method == "lift":
        from ovseg_core.fields.lifting import lift_language_fields
        from ovseg_core.render import make_renderer

        def on_lift(fraction: float, message: str) -> None:
            report(PipelineProgress("lift", PREPROCESS_SHARE + (1 - PREPROCESS_SHARE) * fraction, message))

        fields = lift_language_fields(
            scene,
            train_views,  # held-out validation views are never lifted
            config.levels,
            renderer or make_renderer("cpu"),
            lift,
            encoder_name=image_encoder.name,
            progress=on_lift,
            cancel=cancel,
            device_lock=device_lock,
        )
        if writer is not None:
            writer.save_checkpoint(0, fields)
            writer.close()
        return PipelineResult(
            fields=fields,
            run_dir=writer.path if writer else None,
            checkpoint=writer.last_checkpoint if writer else None,
            history=[],
            initial_losses={},
            final_losses={},
        )

    def on_train(p: TrainProgress) -> None:
        eta = f", ETA {p.eta_s:.0f} s" if p.eta_s != float("inf") else ""
        report(
            PipelineProgress(
                "train",
                PREPROCESS_SHARE + (1 - PREPROCESS_SHARE) * p.fraction,
                f"level {p.level} step {p.step}/{p.total_steps}, loss {p.cosine_loss_valid:.4f}{eta}",
                p,
            )
        )

    trainer = LanguageFieldTrainer(
        scene,
        train_views,
        config,
        renderer=renderer,
        val_views=val_views,
        encoder_name=image_encoder.name,
        observer=writer,
        progress=on_train,
        cancel=cancel,
        device_lock=device_lock,
    )
    try:
        fields = trainer.run()
    finally:
        if writer is not None:
            writer.close()
    return PipelineResult(
        fields=fields,
        run_dir=writer.path if writer else None,
        checkpoint=writer.last_checkpoint if writer else None,
        history=trainer.history,
        initial_losses=trainer.initial_losses,
        final_losses=trainer.final_losses,
    )
