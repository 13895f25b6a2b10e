"""Capture -> class-agnostic 3D instances, as one call that ``ovseg train instances`` and the
viewer's training job share."""

from __future__ import annotations

import os

from ovseg_core.errors import Cancelled
from ovseg_core.fields.training import CancelFlag
from ovseg_core.instances.build import build_instances
from ovseg_core.instances.config import InstanceConfig
from ovseg_core.instances.instance_set import InstanceSet
from ovseg_core.models import ImageEncoder, MaskGenerator
from ovseg_core.pipeline.progress import PipelineProgress, Reporter, after_preprocess, reporter
from ovseg_core.pipeline.views import prepare_views
from ovseg_core.preprocess.config import PreprocessConfig
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene


def build_instances_from_dataset(
    scene: GaussianScene,
    dataset_path: str | os.PathLike[str],
    mask_generator: MaskGenerator | None = None,
    image_encoder: ImageEncoder | None = None,
    *,
    config: InstanceConfig = InstanceConfig(),
    preprocess: PreprocessConfig = PreprocessConfig(),
    renderer: Renderer | None = None,
    progress: Reporter | None = None,
    cancel: CancelFlag | None = None,
) -> InstanceSet:
    """Load the capture aligned with ``scene``, preprocess every view exactly as
    ``train_from_dataset`` does (same cache, so a trained scene reuses its masks and features),
    and build instances from all of them. Reports the ``load``, ``preprocess`` and ``instances``
    phases; raises ``Cancelled`` on cancel (checked between views)."""
    report = reporter(progress)
    prepared = prepare_views(
        scene,
        dataset_path,
        preprocess,
        mask_generator=mask_generator,
        image_encoder=image_encoder,
        progress=report,
        cancel=cancel,
    )

    def on_view(done: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("instance building cancelled")
        report(PipelineProgress("instances", after_preprocess(done / max(total, 1)), f"instances: view {done}/{total}"))

    on_view(0, len(prepared.indices))
    return build_instances(
        scene,
        prepared.dataset,
        prepared.features,
        renderer,
        config,
        view_indices=prepared.indices,
        image_encoder=prepared.image_encoder,
        progress=on_view,
    )
