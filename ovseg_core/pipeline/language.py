"""Capture -> language fields: LangSplatV2 training or training-free lifting of the 2D features, as
one call that ``ovseg train langsplatv2|lift`` and the viewer's training job share."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ovseg_core.errors import UsageError
from ovseg_core.fields.config import IOConfig
from ovseg_core.fields.language_fields import LanguageFields
from ovseg_core.fields.lifting import LiftConfig
from ovseg_core.fields.run_directory import RunDirectory
from ovseg_core.fields.training import CancelFlag, LanguageFieldTrainer, LanguageTrainConfig, TrainProgress
from ovseg_core.models import ImageEncoder, MaskGenerator
from ovseg_core.pipeline.progress import PipelineProgress, Reporter, after_preprocess, reporter
from ovseg_core.pipeline.views import prepare_views
from ovseg_core.preprocess.config import PreprocessConfig
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene


@dataclasses.dataclass
class PipelineResult:
    fields: LanguageFields
    run_dir: Path | None
    checkpoint: Path | None
    history: list[dict[str, float]]
    initial_losses: dict[int, float]
    """Level -> mean masked cosine loss over the training views before training."""
    final_losses: dict[int, float]


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
    progress: Reporter | None = None,
    cancel: CancelFlag | None = None,
    method: Literal["langsplatv2", "lift"] = "langsplatv2",
    lift: LiftConfig = LiftConfig(),
    fields_config: Mapping[str, Any] | None = None,
) -> PipelineResult:
    """Load the dataset aligned with ``scene`` (its normalisation transform), preprocess (cached),
    then train LangSplatV2 fields (``method="langsplatv2"``) or lift the 2D features without
    training (``"lift"``, OpenScene-style), and write the run directory when ``log_path`` is
    given. ``fields_config``: entries added to the fields' ``config`` (e.g. the vocabulary palette
    models need to rebuild their text encoder), in the result and in every saved checkpoint.
    Raises ``Cancelled`` on cancel."""
    if method not in ("langsplatv2", "lift"):
        raise UsageError(f"unknown method {method!r}; choose langsplatv2 or lift")
    report = reporter(progress)
    prepared = prepare_views(
        scene,
        dataset_path,
        preprocess,
        use_every_n_as_val=use_every_n_as_val,
        mask_generator=mask_generator,
        image_encoder=image_encoder,
        progress=report,
        cancel=cancel,
        levels=config.levels,
    )
    train_views, val_views = prepared.training_views()
    encoder_name = prepared.image_encoder.name

    writer: RunDirectory | _Stamped | None = (
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
    if writer is not None and fields_config:
        writer = _Stamped(writer, dict(fields_config))

    if method == "lift":
        from ovseg_core.fields.lifting import lift_language_fields
        from ovseg_core.render import make_renderer

        def on_lift(fraction: float, message: str) -> None:
            report(PipelineProgress("lift", after_preprocess(fraction), message))

        fields = lift_language_fields(
            scene,
            train_views,  # held-out validation views are never lifted
            config.levels,
            renderer or make_renderer("cpu"),
            lift,
            encoder_name=encoder_name,
            progress=on_lift,
            cancel=cancel,
        )
        fields.config.update(fields_config or {})
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
        message = f"level {p.level} step {p.step}/{p.total_steps}, loss {p.cosine_loss_valid:.4f}{eta}"
        report(PipelineProgress("train", after_preprocess(p.fraction), message, p))

    trainer = LanguageFieldTrainer(
        scene,
        train_views,
        config,
        renderer=renderer,
        val_views=val_views,
        encoder_name=encoder_name,
        observer=writer,
        progress=on_train,
        cancel=cancel,
    )
    try:
        fields = trainer.run()
    finally:
        if writer is not None:
            writer.close()
    fields.config.update(fields_config or {})
    return PipelineResult(
        fields=fields,
        run_dir=writer.path if writer else None,
        checkpoint=writer.last_checkpoint if writer else None,
        history=trainer.history,
        initial_losses=trainer.initial_losses,
        final_losses=trainer.final_losses,
    )


class _Stamped:
    """A run directory whose checkpoints carry ``extra`` in the fields' config."""

    def __init__(self, writer: RunDirectory, extra: dict[str, Any]) -> None:
        self.writer, self.extra = writer, extra

    @property
    def path(self) -> Path:
        return self.writer.path

    @property
    def last_checkpoint(self) -> Path | None:
        return self.writer.last_checkpoint

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.writer.log_metrics(step, metrics)

    def save_checkpoint(self, step: int, fields: LanguageFields) -> None:
        fields.config.update(self.extra)
        self.writer.save_checkpoint(step, fields)

    def save_images(self, step: int, images: dict[str, np.ndarray]) -> None:
        self.writer.save_images(step, images)

    def close(self) -> None:
        self.writer.close()
