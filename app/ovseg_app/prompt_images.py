"""What ``ovseg query fields`` and ``ovseg render --mode relevancy`` share: a scene's fields found
and opened, prompts answered in 3D (the Gaussians an export writes), and that answer painted on
a view by the one per-pixel rule (``ovseg_core.render.pixel_answer``, as the viewer draws it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ovseg_core.errors import MissingFileError
from ovseg_core.selection.config import SelectionConfig

if TYPE_CHECKING:
    from ovseg_core.camera import Camera
    from ovseg_core.fields import FieldQuery, QuerySettings
    from ovseg_core.render import Renderer
    from ovseg_core.scene import GaussianScene


def open_fields(
    scene_path: Path,
    scene: GaussianScene,
    fields_path: Path | None,
    clip_model: str | None = None,
    clip_pretrained: str | None = None,
) -> FieldQuery:
    """The query of ``fields_path`` (default: fields found beside ``scene_path``) with the text
    encoder they were trained with (or the OpenCLIP model named)."""
    from ovseg_core.fields import FieldQuery, load_fields
    from ovseg_core.fields.discovery import candidate_field_paths, discover_fields
    from ovseg_core.models import OpenClipConfig
    from ovseg_core.models.registry import text_encoder_for

    if fields_path is not None:
        fields = load_fields(fields_path, scene)
    else:
        fields = discover_fields(scene_path, scene)
        if fields is None:
            where = ", ".join(str(p) for p in candidate_field_paths(scene_path))
            raise MissingFileError(f"no language fields for {scene_path} found (looked in {where}); pass --fields")
    clip = None
    if clip_model or clip_pretrained:
        default = OpenClipConfig()
        clip = OpenClipConfig(model=clip_model or default.model, pretrained=clip_pretrained or default.pretrained)
    return FieldQuery(fields, text_encoder_for(fields, clip))


@dataclasses.dataclass
class PromptsAnswer:
    """Several prompts' answer: the union of their selections."""

    relevancy: np.ndarray
    """``[N]`` float32: max over the prompts of per-Gaussian relevancy."""
    selected: np.ndarray
    """``[N]`` bool: the union of each prompt's selection at the threshold."""
    lines: list[str]
    """One report line per prompt (count, level, max relevancy)."""


def answer_prompts(
    query: FieldQuery,
    scene: GaussianScene,
    prompts: tuple[str, ...],
    settings: QuerySettings,
    threshold: float,
    selection: SelectionConfig = SelectionConfig(),
) -> PromptsAnswer:
    """Each prompt's Gaussians above ``threshold`` (made spatially consistent unless
    ``selection.enabled`` is off), and their union."""
    from ovseg_core.selection import consistent_selection, graph_for

    graph = graph_for(scene, selection) if selection.enabled else None
    selected = np.zeros(scene.num_gaussians, bool)
    relevancy = np.zeros(scene.num_gaussians, np.float32)
    lines = []
    for prompt in prompts:
        rel, level = query.gaussian_relevancy(prompt, settings)
        relevancy = np.maximum(relevancy, rel)
        if graph is not None:
            hit = consistent_selection(graph, rel, threshold, query.evidence(level), selection)
        else:
            hit = rel > threshold
        selected |= hit
        lines.append(
            f"{prompt!r}: {int(hit.sum())} of {scene.num_gaussians} Gaussians (level {level}, max relevancy {rel.max():.3f})"
        )
    return PromptsAnswer(relevancy, selected, lines)


def relevancy_image(
    renderer: Renderer, scene: GaussianScene, camera: Camera, answer: PromptsAnswer, threshold: float
) -> np.ndarray:
    """uint8 ``[H, W, 3]``: the view with the answer's pixels painted by relevancy (the pixels
    whose most-weighted Gaussian is selected)."""
    from ovseg_core.colormaps import heat_overlay
    from ovseg_core.render.pixel_answer import from_shown, shown_gaussians

    out = renderer.render(scene, camera, top_k=1)
    rgb = out.rgb[0].clamp(0, 1).cpu().numpy()
    pixels = from_shown(shown_gaussians(out), answer.relevancy, answer.selected, threshold)
    return heat_overlay(rgb, pixels.relevancy, floor=threshold)
