"""``ovseg query`` (alias ``ovseg-query``): ask a scene's language fields, or its 3D instances, for
something and export it. ``fields`` and ``instances`` are its two modes (subcommands)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import tyro

from ovseg_app.cli_checks import check_query_args, prepare_query
from ovseg_app.command_runner import describe, run_cli
from ovseg_core.errors import MissingFileError, UsageError
from ovseg_core.fields.config import DEFAULT_NEGATIVES
from ovseg_core.render import BackendName
from ovseg_core.selection.config import DEFAULT_THRESHOLD, SelectionConfig

EXAMPLES_FIELDS = """
ovseg query fields scene.ply --fields langsplatv2_logs --prompt mug --export mug.ply
ovseg query fields scene.ply --prompt mug --invert --export without_mug.ply
ovseg query fields scene.ply --prompt mug --dataset capture/ --relevancy-dir heat/
"""
EXAMPLES_INSTANCES = """
ovseg query instances scene.ply --instances scene.instances.pt --prompt mug --export mug.ply
ovseg query instances scene.ply --instances scene.instances.pt --prompt mug chair --export-instances parts/
"""


@dataclasses.dataclass
class QueryCommand:
    """Select the Gaussians that match a text prompt, export them, and/or write relevancy images."""

    scene: tyro.conf.Positional[Path]
    """The splat the fields were trained on."""
    prompt: tuple[str, ...] = ()
    """What to look for; several prompts select the union. With --export-instances: the labels
    instances are named after."""
    fields: Path | None = None
    """Fields checkpoint (file, run directory or log directory); default: found beside the scene."""
    negatives: tuple[str, ...] = DEFAULT_NEGATIVES
    """Canonical phrases a match must beat."""
    threshold: float = DEFAULT_THRESHOLD
    """Relevancy above which a Gaussian is selected."""
    level: int | None = None
    """Feature level to use; default: per prompt, the level with the highest relevancy."""
    export: Path | None = None
    """Write the selected Gaussians here, in the format its extension names: .ply (INRIA 3DGS layout), .spz, .splat."""
    invert: bool = False
    """Export everything except the selection."""
    dataset: Path | None = None
    """With --relevancy-dir: the capture whose views to render."""
    relevancy_dir: Path | None = None
    """Write each dataset view here (PNG) with the selection's pixels painted by relevancy (the pixels whose
    most-weighted Gaussian is selected, as the viewer draws a prompt's answer)."""
    downsample: int = 1
    """Image downsample factor for relevancy views."""
    clip_model: str | None = None
    """OpenCLIP architecture of the text encoder; default: the one recorded in the checkpoint."""
    clip_pretrained: str | None = None
    """Its weights: a hub tag or a local checkpoint path; default: the checkpoint's."""
    backend: BackendName = "auto"
    """Renderer of the relevancy images."""
    instances: Path | None = None
    """An instances file (``InstanceSet.save``) to query instead of language fields: --export then
    writes the instances whose relevancy to a prompt exceeds --threshold."""
    export_instances: Path | None = None
    """With --instances: write every instance as its own PLY here (``<index>_<best prompt>.ply``
    when prompts are given, else ``<index>.ply``)."""
    selection: SelectionConfig = SelectionConfig()
    """Spatial consistency of the selection: hidden Gaussians follow their neighbours, isolated
    strays drop out (``--selection.no-enabled``: exactly the Gaussians above the threshold)."""

    overwrite: bool = False
    """Replace --export (and PLYs in --export-instances, PNGs in --relevancy-dir) if they already exist."""

    def __post_init__(self) -> None:
        check_query_args(self)

    def execute(self) -> list[str]:
        from ovseg_core.fields import FieldQuery, load_fields
        from ovseg_core.fields.discovery import open_fields
        from ovseg_core.io import load_scene, save_scene
        from ovseg_core.models import OpenClipConfig
        from ovseg_core.models.registry import text_encoder_for
        from ovseg_core.selection import graph_for, select_prompt

        prepare_query(self)
        if self.instances is not None or self.export_instances is not None:
            return self._execute_instances()
        if not self.prompt:
            raise UsageError("give at least one --prompt")
        if self.export is None and self.relevancy_dir is None:
            raise UsageError("nothing to do: give --export and/or --relevancy-dir")
        if (self.relevancy_dir is None) != (self.dataset is None):
            raise UsageError("--relevancy-dir and --dataset go together")
        if not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold must lie in [0, 1], got {self.threshold}")
        scene = load_scene(self.scene)
        if self.fields is not None:
            fields = load_fields(self.fields, scene)
        else:
            try:
                fields = open_fields(self.scene, scene)
            except MissingFileError as e:
                raise MissingFileError(f"{e}; pass --fields") from None
        clip = None
        if self.clip_model or self.clip_pretrained:
            default = OpenClipConfig()
            clip = OpenClipConfig(
                model=self.clip_model or default.model, pretrained=self.clip_pretrained or default.pretrained
            )
        query = FieldQuery(fields, text_encoder_for(fields, clip))
        report = []
        unseen = query.unseen_count()
        if unseen:
            report.append(
                f"{unseen} of {scene.num_gaussians} Gaussians were never seen by the views the fields came from "
                "(relevancy 0" + (", filled from their neighbours" if self.selection.enabled else "") + ")"
            )
        graph = graph_for(scene, self.selection) if self.selection.enabled else None
        answer = select_prompt(
            query,
            graph,
            self.prompt,
            negatives=self.negatives,
            threshold=self.threshold,
            level=self.level,
            selection=self.selection,
        )
        selected = answer.gaussians
        for m in answer.matches:
            report.append(
                f"{m.phrase!r}: {int(m.gaussians.sum())} of {scene.num_gaussians} Gaussians "
                f"(level {m.level}, max relevancy {m.relevancy.max():.3f})"
            )
        if self.export is not None:
            keep = ~selected if self.invert else selected
            if not keep.any():
                raise UsageError(f"the selection is empty; nothing exported to {self.export} (try a lower --threshold)")
            save_scene(scene.subset(keep), self.export)
            report.append(f"wrote {int(keep.sum())} Gaussians to {self.export}")
        if self.relevancy_dir is not None:
            report += self._relevancy_images(scene, answer)
        return report

    def _execute_instances(self) -> list[str]:
        import numpy as np

        from ovseg_core.instances import export_instances, instance_file_names, load_instances
        from ovseg_core.io import load_scene, save_scene
        from ovseg_core.models import OpenClipConfig
        from ovseg_core.models.registry import text_encoder_for

        if self.instances is None:
            raise UsageError("give --instances (an instances file, InstanceSet.save)")
        if self.export is None and self.export_instances is None:
            raise UsageError("nothing to do: give --export and/or --export-instances with --instances")
        if self.relevancy_dir is not None or self.fields is not None:
            raise UsageError("--instances does not combine with --fields or --relevancy-dir")
        if self.export is not None and not self.prompt:
            raise UsageError("--export with --instances needs at least one --prompt")
        if not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold must lie in [0, 1], got {self.threshold}")
        scene = load_scene(self.scene)
        instances = load_instances(self.instances, scene)
        report = [
            f"{instances.num_instances} instances cover {int((instances.labels >= 0).sum())} of {scene.num_gaussians} Gaussians"
        ]
        if self.prompt:
            clip = None
            if self.clip_model or self.clip_pretrained:
                default = OpenClipConfig()
                clip = OpenClipConfig(
                    model=self.clip_model or default.model, pretrained=self.clip_pretrained or default.pretrained
                )
            encoder = text_encoder_for(instances, clip)
            instances.classify(encoder, self.prompt)
        if self.export is not None:
            rel = instances.relevancy(encoder, self.prompt, self.negatives).max(axis=1)  # [K]
            hit = np.flatnonzero(rel > self.threshold)
            selected = np.isin(instances.labels, hit)
            keep = ~selected if self.invert else selected
            if not keep.any():
                raise UsageError(f"the selection is empty; nothing exported to {self.export} (try a lower --threshold)")
            save_scene(scene.subset(keep), self.export)
            report.append(f"wrote {int(keep.sum())} Gaussians of {len(hit)} matching instances to {self.export}")
        if self.export_instances is not None:
            paths = export_instances(scene, instances, self.export_instances)
            names = instance_file_names(instances)
            report += [
                f"  {p.name}: {int(n)} Gaussians, {int(v)} views"
                if p is not None
                else f"  {name}: skipped, instance {k} has no Gaussians"
                for k, (p, name, n, v) in enumerate(zip(paths, names, instances.sizes, instances.support))
            ]
            written = sum(p is not None for p in paths)
            skipped = f" ({len(paths) - written} empty ones skipped)" if written < len(paths) else ""
            report.append(f"wrote {written} instance PLYs to {self.export_instances}{skipped}")
        return report

    def _relevancy_images(self, scene, answer) -> list[str]:  # noqa: ANN001
        """Each dataset view with the selection's pixels painted by relevancy (``prompt_images``)."""
        import imageio.v3 as iio

        from ovseg_app.prompt_images import relevancy_image
        from ovseg_core.data import DatasetConfig, load_dataset
        from ovseg_core.io import atomic_write_bytes
        from ovseg_core.render import make_renderer

        assert self.dataset is not None and self.relevancy_dir is not None
        dataset = load_dataset(
            self.dataset, DatasetConfig(image_downsample_factor=self.downsample), reconstruction_metadata=scene.metadata
        )
        renderer = make_renderer(self.backend)
        for view in dataset:
            image = relevancy_image(renderer, scene, view.camera, answer.relevancy, answer.gaussians, self.threshold)
            atomic_write_bytes(
                self.relevancy_dir / f"{Path(view.name).stem}.png", iio.imwrite("<bytes>", image, extension=".png")
            )
        return [f"wrote {len(dataset)} relevancy images to {self.relevancy_dir}"]


@dataclasses.dataclass
class QueryFields(QueryCommand):
    """Select the Gaussians whose language-field relevancy to a prompt passes --threshold: export
    them and/or write relevancy images."""

    instances: tyro.conf.Suppress[Path | None] = None
    export_instances: tyro.conf.Suppress[Path | None] = None


@dataclasses.dataclass
class QueryInstances(QueryCommand):
    """Query 3D instances (an ``InstanceSet`` file): export those relevant to a prompt and/or every
    instance as its own PLY."""

    instances: Path | None = None
    """The instances file (``InstanceSet.save``, built by the viewer); required."""
    fields: tyro.conf.Suppress[Path | None] = None
    level: tyro.conf.Suppress[int | None] = None
    dataset: tyro.conf.Suppress[Path | None] = None
    relevancy_dir: tyro.conf.Suppress[Path | None] = None
    downsample: tyro.conf.Suppress[int] = 1
    backend: tyro.conf.Suppress[BackendName] = "auto"


COMMAND = (
    Annotated[QueryFields, tyro.conf.subcommand("fields", description=describe(QueryFields, EXAMPLES_FIELDS))]
    | Annotated[
        QueryInstances, tyro.conf.subcommand("instances", description=describe(QueryInstances, EXAMPLES_INSTANCES))
    ]
)
"""The ``ovseg query`` modes."""
DESCRIPTION = "Select Gaussians by a text prompt (language fields or 3D instances) and export them."


def main(argv: list[str] | None = None, prog: str = "ovseg-query") -> int:
    return run_cli(prog, COMMAND, argv, description=DESCRIPTION, report="\n".join)


if __name__ == "__main__":
    sys.exit(main())
