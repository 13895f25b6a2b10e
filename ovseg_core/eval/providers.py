"""Where per-level relevancy maps come from: a protocol, and the implementation on language fields."""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.errors import UsageError
from ovseg_core.fields.language_fields import LanguageFields
from ovseg_core.fields.relevancy import DEFAULT_NEGATIVES, FieldQuery
from ovseg_core.models.protocols import TextEncoder
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene


@runtime_checkable
class RelevancyProvider(Protocol):
    """Anything that scores a prompt per pixel of a view, at one or more feature levels."""

    def relevancy(self, frame_index: int, camera: Camera, prompt: str) -> dict[int, np.ndarray]:
        """``{level: [H, W] float}`` relevancy of ``prompt`` in view ``frame_index`` (seen through
        ``camera``). Any size; the evaluator resizes to the annotation."""
        ...


@dataclasses.dataclass(frozen=True)
class FieldRelevancySettings:
    """How the field provider scores pixels."""

    negatives: tuple[str, ...] = DEFAULT_NEGATIVES
    """Canonical phrases a match must beat (LERF's)."""
    temperature: float = 10.0
    """Softmax temperature between the positive and each negative."""
    min_alpha: float = 0.0
    """Relevancy is 0 where the rendered opacity is below this. The reference normalises every
    rendered feature whatever its opacity, so 0 (off) matches it."""


class FieldRelevancyProvider:
    """``RelevancyProvider`` on LangSplatV2 language fields: renders each level's codes once per
    frame and scores every prompt of that frame from them."""

    def __init__(
        self,
        scene: GaussianScene,
        fields: LanguageFields,
        text_encoder: TextEncoder,
        renderer: Renderer,
        settings: FieldRelevancySettings = FieldRelevancySettings(),
    ) -> None:
        fields.check_scene(scene)
        self.scene = scene
        self.query = FieldQuery(fields, text_encoder)
        self.renderer = renderer
        self.settings = settings
        self._frame: int | None = None
        self._codes: dict[int, torch.Tensor] = {}
        self.renders = 0
        """How many level renders were made (one per level per frame)."""

    def _codes_for(self, frame_index: int, camera: Camera) -> dict[int, torch.Tensor]:
        if self._frame != frame_index:  # frames come one at a time; keep only the current one's codes
            self._codes = {
                lvl: self.query.render_codes(self.renderer, self.scene, camera, lvl)
                for lvl in sorted(self.query.levels)
            }
            self._frame = frame_index
            self.renders += len(self._codes)
        return self._codes

    def relevancy(self, frame_index: int, camera: Camera, prompt: str) -> dict[int, np.ndarray]:
        codes = self._codes_for(frame_index, camera)
        if not prompt.strip():
            raise UsageError("the prompt is empty")
        q = self.query.embed([prompt, *[n for n in self.settings.negatives if n.strip()]])
        return {
            lvl: self.query.pixel_relevancy_from_codes(c, lvl, q, self.settings.temperature, self.settings.min_alpha)
            for lvl, c in codes.items()
        }
