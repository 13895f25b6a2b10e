"""Timing of 3D instance building (mask lifting + merging), for ``ovseg-bench``.

``bench_instances()`` with no arguments times a synthetic floating-objects capture (24 ring views,
palette models, fully offline); pass a scene and a capture to time real data. Preprocessing
(masks + CLIP) runs first, outside the timed part, and is cached as for training.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ovseg_core.instances import InstanceConfig
    from ovseg_core.models import ImageEncoder, MaskGenerator
    from ovseg_core.render import Renderer
    from ovseg_core.scene import GaussianScene


def bench_instances(
    scene: GaussianScene | None = None,
    dataset_path: str | os.PathLike[str] | None = None,
    mask_generator: MaskGenerator | None = None,
    image_encoder: ImageEncoder | None = None,
    *,
    config: InstanceConfig | None = None,
    renderer: Renderer | None = None,
    image_downsample_factor: int = 1,
    repeats: int = 1,
) -> float:
    """Best-of-``repeats`` seconds of ``build_instances`` over every view of the capture.
    Without ``scene``/``dataset_path``: a synthetic capture (``points_per_object`` 600, 96x72 views)."""
    from ovseg_core.data import DatasetConfig, load_dataset
    from ovseg_core.instances import InstanceConfig, build_instances
    from ovseg_core.preprocess import preprocess_views
    from ovseg_core.render import make_renderer

    if (scene is None) != (dataset_path is None):
        raise ValueError("give both scene and dataset_path, or neither (synthetic capture)")
    with tempfile.TemporaryDirectory(prefix="ovseg-bench-instances-") as tmp:
        if scene is None:
            scene, dataset_path, mask_generator, image_encoder = _synthetic_capture(tmp)
        if mask_generator is None or image_encoder is None:
            raise ValueError("give mask_generator and image_encoder for a real capture")
        dataset = load_dataset(
            dataset_path,
            DatasetConfig(image_downsample_factor=image_downsample_factor),
            reconstruction_metadata=scene.metadata,
        )
        indices = list(range(len(dataset)))
        features = preprocess_views(dataset, mask_generator, image_encoder, indices=indices)
        renderer = renderer or make_renderer("cpu")
        best = float("inf")
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            build_instances(
                scene,
                dataset,
                features,
                renderer,
                config or InstanceConfig(),
                view_indices=indices,
                image_encoder=image_encoder,
            )
            best = min(best, time.perf_counter() - t0)
        return best


def _synthetic_capture(root: str):  # noqa: ANN202
    from ovseg_core.camera import orbit_cameras
    from ovseg_core.models.palette_models import Vocabulary, palette_models
    from ovseg_core.synthetic import FLOATING_OBJECTS, floating_objects_scene, write_capture

    scene = floating_objects_scene()
    cams = [
        c for el in (50, 10, -35) for c in orbit_cameras((0, 0, 0.05), 2.0, 8, elevation_deg=el, width=96, height=72)
    ]
    write_capture(scene, cams, root)
    vocab = Vocabulary.build(
        [o.name for o in FLOATING_OBJECTS], [o.color for o in FLOATING_OBJECTS], name="bench-floating"
    )
    masks, encoder, _ = palette_models(vocab)
    return scene, root, masks, encoder


if __name__ == "__main__":
    print(f"build_instances: {bench_instances(repeats=3):.3f} s")


@dataclasses.dataclass
class InstancesBench:
    """``ovseg-bench instances``: seconds to build 3D instances on the synthetic capture."""

    repeats: int = 3
    """Timed builds; the best is reported."""

    def execute(self) -> dict:
        seconds = bench_instances(repeats=self.repeats)
        print(f"3D instances (synthetic floating objects, 3,000 Gaussians, 24 views at 96x72): {seconds:.2f} s")
        return {"instances_s": seconds}
