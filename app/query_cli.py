"""``ovseg-query``: ask a scene's language fields for something and export it.

ovseg-query scene.ply --fields langsplatv2_logs --prompt mug --export mug.ply
ovseg-query scene.ply --prompt mug --invert --export without_mug.ply
ovseg-query scene.ply --prompt mug --dataset capture/ --relevancy-dir heat/
ovseg-query scene.ply --instances scene.instances.pt --prompt mug chair --export-instances parts/
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from ovseg_core.colormaps import heat_overlay
from ovseg_core.errors import FieldMismatchError, ModelLoadError, SceneFormatError
from ovseg_core.fields import DEFAULT_NEGATIVES, FieldQuery, QuerySettings, load_fields
from ovseg_core.fields.discovery import candidate_field_paths, discover_fields, text_encoder_for
from ovseg_core.io import atomic_write_bytes, load_scene, save_scene
from ovseg_core.models import OpenClipConfig
from ovseg_core.render import make_renderer
from ovseg_core.selection import SelectionConfig, build_graph, consistent_selection


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
    threshold: float = 0.5
    """Relevancy above which a Gaussian is selected."""
    level: int | None = None
    """Feature level to use; default: per prompt, the level with the highest relevancy."""
    export: Path | None = None
    """Write the selected Gaussians here as a 3DGS PLY (INRIA layout)."""
    invert: bool = False
    """Export everything except the selection."""
    dataset: Path | None = None
    """With --relevancy-dir: the capture whose views to render."""
    relevancy_dir: Path | None = None
    """Write a relevancy heat map over RGB for each dataset view here (PNG)."""
    downsample: int = 1
    """Image downsample factor for relevancy views."""
    clip_model: str | None = None
    """OpenCLIP architecture of the text encoder; default: the one recorded in the checkpoint."""
    clip_pretrained: str | None = None
    """Its weights: a hub tag or a local checkpoint path; default: the checkpoint's."""
    backend: Literal["auto", "fvdb", "cpu", "torch"] = "auto"
    instances: Path | None = None
    """An instances file (``InstanceSet.save``) to query instead of language fields: --export then
    writes the instances whose relevancy to a prompt exceeds --threshold."""
    export_instances: Path | None = None
    """With --instances: write every instance as its own PLY here (``<index>_<best prompt>.ply``
    when prompts are given, else ``<index>.ply``)."""
    selection: SelectionConfig = SelectionConfig()
    """Spatial consistency of the selection: hidden Gaussians follow their neighbours, isolated
    strays drop out (``--selection.enabled False``: exactly the Gaussians above the threshold)."""

    def execute(self) -> list[str]:
        if self.instances is not None or self.export_instances is not None:
            return self._execute_instances()
        if not self.prompt:
            raise ValueError("give at least one --prompt")
        if self.export is None and self.relevancy_dir is None:
            raise ValueError("nothing to do: give --export and/or --relevancy-dir")
        if (self.relevancy_dir is None) != (self.dataset is None):
            raise ValueError("--relevancy-dir and --dataset go together")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"--threshold must lie in [0, 1], got {self.threshold}")
        scene = load_scene(self.scene)
        if self.fields is not None:
            fields = load_fields(self.fields, scene)
        else:
            fields = discover_fields(self.scene, scene)
            if fields is None:
                where = ", ".join(str(p) for p in candidate_field_paths(self.scene))
                raise FileNotFoundError(f"no language fields for {self.scene} found (looked in {where}); pass --fields")
        clip = None
        if self.clip_model or self.clip_pretrained:
            default = OpenClipConfig()
            clip = OpenClipConfig(
                model=self.clip_model or default.model, pretrained=self.clip_pretrained or default.pretrained
            )
        query = FieldQuery(fields, text_encoder_for(fields, clip))
        settings = QuerySettings(negatives=tuple(self.negatives), level=self.level)
        report = []
        unseen = query.unseen_count()
        if unseen:
            report.append(
                f"{unseen} of {scene.num_gaussians} Gaussians were never seen by the views the fields came from "
                "(relevancy 0" + (", filled from their neighbours" if self.selection.enabled else "") + ")"
            )
        graph = (
            build_graph(scene, neighbours=self.selection.neighbours, link_factor=self.selection.link_factor)
            if self.selection.enabled
            else None
        )
        selected = np.zeros(scene.num_gaussians, bool)
        for prompt in self.prompt:
            rel, level = query.gaussian_relevancy(prompt, settings)
            if graph is not None:
                hit = consistent_selection(graph, rel, self.threshold, query.seen_mask(level), self.selection)
            else:
                hit = rel > self.threshold
            selected |= hit
            report.append(
                f"{prompt!r}: {int(hit.sum())} of {scene.num_gaussians} Gaussians (level {level}, max relevancy {rel.max():.3f})"
            )
        if self.export is not None:
            keep = ~selected if self.invert else selected
            if not keep.any():
                raise ValueError(f"the selection is empty; nothing exported to {self.export} (try a lower --threshold)")
            save_scene(scene.subset(keep), self.export)
            report.append(f"wrote {int(keep.sum())} Gaussians to {self.export}")
        if self.relevancy_dir is not None:
            report += self._relevancy_images(scene, query, settings)
        return report

    def _execute_instances(self) -> list[str]:
        from ovseg_core.instances import export_instances, load_instances, text_encoder_for_instances

        if self.instances is None:
            raise ValueError("--export-instances needs --instances (an instances file)")
        if self.export is None and self.export_instances is None:
            raise ValueError("nothing to do: give --export and/or --export-instances with --instances")
        if self.relevancy_dir is not None or self.fields is not None:
            raise ValueError("--instances does not combine with --fields or --relevancy-dir")
        if self.export is not None and not self.prompt:
            raise ValueError("--export with --instances needs at least one --prompt")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"--threshold must lie in [0, 1], got {self.threshold}")
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
            encoder = text_encoder_for_instances(instances, clip)
            instances.classify(encoder, self.prompt)
        if self.export is not None:
            rel = instances.relevancy(encoder, self.prompt, self.negatives).max(axis=1)  # [K]
            hit = np.flatnonzero(rel > self.threshold)
            selected = np.isin(instances.labels, hit)
            keep = ~selected if self.invert else selected
            if not keep.any():
                raise ValueError(f"the selection is empty; nothing exported to {self.export} (try a lower --threshold)")
            save_scene(scene.subset(keep), self.export)
            report.append(f"wrote {int(keep.sum())} Gaussians of {len(hit)} matching instances to {self.export}")
        if self.export_instances is not None:
            paths = export_instances(scene, instances, self.export_instances)
            report += [
                f"  {p.name}: {int(n)} Gaussians, {int(v)} views"
                for p, n, v in zip(paths, instances.sizes, instances.support)
            ]
            report.append(f"wrote {len(paths)} instance PLYs to {self.export_instances}")
        return report

    def _relevancy_images(self, scene, query: FieldQuery, settings: QuerySettings) -> list[str]:  # noqa: ANN001
        import imageio.v3 as iio

        from ovseg_core.data import DatasetConfig, load_dataset

        assert self.dataset is not None and self.relevancy_dir is not None
        dataset = load_dataset(
            self.dataset, DatasetConfig(image_downsample_factor=self.downsample), reconstruction_metadata=scene.metadata
        )
        renderer = make_renderer(self.backend)
        for view in dataset:
            rgb = renderer.render(scene, view.camera).rgb[0].clamp(0, 1).cpu().numpy()
            codes = {lvl: query.render_codes(renderer, scene, view.camera, lvl) for lvl in query.levels}
            rel = np.max(
                [
                    query.pixel_relevancy(renderer, scene, view.camera, p, settings, code_images=codes)[0]
                    for p in self.prompt
                ],
                axis=0,
            )
            image = heat_overlay(rgb, rel, floor=self.threshold)
            atomic_write_bytes(
                self.relevancy_dir / f"{Path(view.name).stem}.png", iio.imwrite("<bytes>", image, extension=".png")
            )
        return [f"wrote {len(dataset)} relevancy images to {self.relevancy_dir}"]


def main(argv: list[str] | None = None) -> int:
    cmd = tyro.cli(QueryCommand, args=argv)
    try:
        lines = cmd.execute()
    except (SceneFormatError, FieldMismatchError, ModelLoadError, ValueError, FileNotFoundError) as e:
        print(f"ovseg-query: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
