"""``ovseg eval-lerf`` (alias ``ovseg-eval-lerf``): the LERF-OVS evaluation (mIoU and localisation
accuracy) of language fields."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import tyro

from ovseg_app.cli_checks import check_output_dir
from ovseg_app.command_runner import describe, run_cli
from ovseg_core.errors import MissingFileError, UsageError
from ovseg_core.fields.config import DEFAULT_NEGATIVES
from ovseg_core.render import BackendName

EXAMPLES = """
ovseg eval-lerf --scene teatime/scene.ply --fields teatime/langsplatv2_logs --dataset teatime/ --gt lerf_ovs/label/teatime --output-dir eval/
# several scenes: give each option once per scene, in the same order
ovseg eval-lerf --scene a.ply b.ply --dataset a/ b/ --gt label/a label/b --output-dir eval/
"""


@dataclasses.dataclass
class EvalLerfCommand:
    """Score language fields on LERF-OVS annotations: per-scene and overall mIoU and localisation."""

    scene: tuple[Path, ...]
    """Splat PLY of each scene."""
    dataset: tuple[Path, ...]
    """Capture of each scene (transforms.json or COLMAP); its name-sorted views are the frames the
    annotations number (frame_00001 = the first)."""
    gt: tuple[Path, ...]
    """Annotation folder of each scene (frame_XXXXX.json, LERF-OVS or labelme)."""
    output_dir: Path
    """Where lerf_results.json, <scene>/results.json and <scene>/frame_XXXXX.png go."""
    fields: tuple[Path, ...] = ()
    """Fields checkpoint of each scene (file or run directory); default: found beside each scene."""
    name: tuple[str, ...] = ()
    """Name of each scene; default: its annotation folder's name."""
    downsample: int = 1
    """Render at the capture size divided by this (relevancy is resized to the annotation size)."""
    mask_threshold: float = 0.4
    """Threshold on the normalised relevancy (the reference's --mask_thresh)."""
    negatives: tuple[str, ...] = DEFAULT_NEGATIVES
    """Canonical phrases a match must beat."""
    min_alpha: float = 0.0
    """Zero relevancy where rendered opacity is below this (0 = off, as the reference)."""
    no_visualizations: tyro.conf.FlagCreatePairsOff[bool] = False
    """Skip the per-frame PNGs."""
    clip_model: str | None = None
    """OpenCLIP architecture of the text encoder; default: the one recorded in the checkpoint."""
    clip_pretrained: str | None = None
    """Its weights: a hub tag or a local checkpoint path; default: the checkpoint's."""
    backend: BackendName = "auto"
    """Renderer."""

    def _check(self) -> None:
        n = len(self.scene)
        if n == 0:
            raise UsageError("give at least one --scene")
        for opt, values in (
            ("--dataset", self.dataset),
            ("--gt", self.gt),
            ("--fields", self.fields),
            ("--name", self.name),
        ):
            if opt in ("--fields", "--name") and not values:
                continue
            if len(values) != n:
                raise UsageError(f"{opt} needs one value per --scene ({n}), got {len(values)}")
        for p in self.scene:
            if not p.is_file():
                raise MissingFileError(f"{p}: scene file not found")
        for p in self.gt:
            if not p.is_dir():
                raise MissingFileError(f"{p}: annotation folder not found")
        if not 0.0 <= self.mask_threshold < 1.0:
            raise UsageError(f"--mask-threshold must lie in [0, 1), got {self.mask_threshold}")
        if self.downsample < 1:
            raise UsageError(f"--downsample must be >= 1, got {self.downsample}")
        check_output_dir("--output-dir", self.output_dir)

    def execute(self) -> str:
        from ovseg_core.data import DatasetConfig, load_dataset
        from ovseg_core.eval import (
            EvalConfig,
            FieldRelevancyProvider,
            FieldRelevancySettings,
            LerfScene,
            evaluate_scenes,
        )
        from ovseg_core.fields import load_fields
        from ovseg_core.fields.discovery import open_fields
        from ovseg_core.io import load_scene
        from ovseg_core.models import OpenClipConfig
        from ovseg_core.models.registry import text_encoder_for
        from ovseg_core.render import make_renderer

        self._check()
        clip = None
        if self.clip_model or self.clip_pretrained:
            default = OpenClipConfig()
            clip = OpenClipConfig(
                model=self.clip_model or default.model, pretrained=self.clip_pretrained or default.pretrained
            )
        renderer = make_renderer(self.backend)
        settings = FieldRelevancySettings(negatives=tuple(self.negatives), min_alpha=self.min_alpha)
        scenes = []
        for i, ply in enumerate(self.scene):
            splats = load_scene(ply)
            if self.fields:
                fields = load_fields(self.fields[i], splats)
            else:
                try:
                    fields = open_fields(ply, splats)
                except MissingFileError as e:
                    raise MissingFileError(f"{e}; pass --fields") from None
            dataset = load_dataset(
                self.dataset[i],
                DatasetConfig(image_downsample_factor=self.downsample),
                reconstruction_metadata=splats.metadata,
            )
            provider = FieldRelevancyProvider(splats, fields, text_encoder_for(fields, clip), renderer, settings)
            name = self.name[i] if self.name else self.gt[i].resolve().name
            scenes.append(LerfScene(name, self.gt[i], provider, dataset))
        config = EvalConfig(mask_threshold=self.mask_threshold, save_visualizations=not self.no_visualizations)
        result = evaluate_scenes(scenes, self.output_dir, config)
        return f"{result.table()}\nwrote {self.output_dir / 'lerf_results.json'}"


COMMAND = EvalLerfCommand
DESCRIPTION = describe(EvalLerfCommand, EXAMPLES)


def main(argv: list[str] | None = None, prog: str = "ovseg-eval-lerf") -> int:
    return run_cli(prog, EvalLerfCommand, argv, description=DESCRIPTION, report=str)


if __name__ == "__main__":
    sys.exit(main())
