"""Capture -> language fields: LangSplatV2 training or training-free lifting of the 2D features, as
one call that ``ovseg train langsplatv2|lift`` and the viewer's training job share."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal

from ovseg_core.fields.config import IOConfig, PreprocessConfig
from ovseg_core.fields.language_fields import LanguageFields
from ovseg_core.fields.lifting import LiftConfig
from ovseg_core.fields.run_directory import RunDirectory
from ovseg_core.fields.training import CancelFlag, LanguageFieldTrainer, LanguageTrainConfig, TrainProgress
from ovseg_core.models import ImageEncoder, MaskGenerator
from ovseg_core.pipeline.progress import PipelineProgress, Reporter, after_preprocess, reporter
from ovseg_core.pipeline.views import prepare_views
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
) -> PipelineResult:
    """Load the dataset aligned with ``scene`` (its normalisation transform), preprocess (cached),
    then train LangSplatV2 fields (``method="langsplatv2"``) or lift the 2D features without
    training (``"lift"``, OpenScene-style), and write the run directory when ``log_path`` is
    given. Raises ``Cancelled`` on cancel."""
    if method not in ("langsplatv2", "lift"):
        raise ValueError(f"unknown method {method!r}; choose langsplatv2 or lift")
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
    )
    train_views, val_views = prepared.training_views()
    encoder_name = prepared.image_encoder.name

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
    return PipelineResult(
        fields=fields,
        run_dir=writer.path if writer else None,
        checkpoint=writer.last_checkpoint if writer else None,
        history=trainer.history,
        initial_losses=trainer.initial_losses,
        final_losses=trainer.final_losses,
    )
