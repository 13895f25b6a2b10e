"""The mask generator and image encoder a ``PreprocessConfig`` names."""

from __future__ import annotations

from ovseg_core.models import ImageEncoder, MaskGenerator
from ovseg_core.preprocess.config import PreprocessConfig


def build_models(config: PreprocessConfig) -> tuple[MaskGenerator, ImageEncoder]:
    """The configured SAM2 + OpenCLIP (or their tiny random twins)."""
    from ovseg_core.models import OpenClipEncoder, Sam2MaskGenerator, tiny_open_clip, tiny_sam2

    if config.tiny_models:
        return tiny_sam2(), tiny_open_clip()
    return Sam2MaskGenerator.from_config(config.sam2), OpenClipEncoder.from_config(config.clip)
