"""One call from a scene and a phrase to the Gaussians it names: ``segment(scene, fields, "mug")``.

It answers as ``ovseg query`` and the viewer do (all three call ``selection.prompt.select_prompt``):
the spatially consistent selection at ``DEFAULT_THRESHOLD`` against ``DEFAULT_NEGATIVES``."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ovseg_core.errors import UsageError
from ovseg_core.fields.config import DEFAULT_NEGATIVES
from ovseg_core.fields.discovery import open_fields
from ovseg_core.fields.language_fields import LanguageFields, load_fields
from ovseg_core.fields.relevancy import FieldQuery
from ovseg_core.models.protocols import TextEncoder
from ovseg_core.scene import GaussianScene
from ovseg_core.selection.config import DEFAULT_THRESHOLD, SelectionConfig
from ovseg_core.selection.graph import graph_for
from ovseg_core.selection.prompt import select_prompt

__all__ = ["open_fields", "segment"]

PathLike = str | os.PathLike[str]


def segment(
    scene: GaussianScene | PathLike,
    fields: LanguageFields | PathLike | None,
    prompt: str | Sequence[str],
    *,
    negatives: Sequence[str] = DEFAULT_NEGATIVES,
    threshold: float = DEFAULT_THRESHOLD,
    level: int | None = None,
    selection: SelectionConfig = SelectionConfig(),
    text_encoder: TextEncoder | None = None,
) -> np.ndarray:
    """``[N]`` bool numpy mask of the Gaussians of ``scene`` that ``prompt`` names (several phrases:
    their union); ``scene.subset(mask)`` keeps them.

    ``scene``: a loaded ``GaussianScene`` or a path to one. ``fields``: loaded fields, a checkpoint
    path (file or run directory), or None to find the scene's own beside its path (``open_fields``).
    ``text_encoder`` defaults to the one the fields were trained with (``text_encoder_for``).
    Each call builds the query and the neighbourhood graph anew; for many prompts on one scene pass
    them together, or keep a ``FieldQuery`` and ``graph_for(scene, selection)`` and call
    ``ovseg_core.selection.select_prompt``."""
    scene_path: PathLike | None = None
    if not isinstance(scene, GaussianScene):
        from ovseg_core.io import load_scene

        scene_path, scene = scene, load_scene(scene)
    if fields is None:
        if scene_path is None:
            raise UsageError("fields=None finds the fields beside the scene's file: pass the scene as a path")
        fields = open_fields(scene_path, scene)
    elif isinstance(fields, LanguageFields):
        fields.check_scene(scene)
    else:
        fields = load_fields(fields, scene)
    if text_encoder is None:
        from ovseg_core.models.registry import text_encoder_for

        text_encoder = text_encoder_for(fields)
    query = FieldQuery(fields, text_encoder)
    graph = graph_for(scene, selection) if selection.enabled else None
    answer = select_prompt(
        query, graph, prompt, negatives=negatives, threshold=threshold, level=level, selection=selection
    )
    return answer.gaussians
