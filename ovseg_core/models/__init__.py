"""2D models behind small protocols: SAM 2 masks at four scales, OpenCLIP image/text embeddings.

Names load on first use (``ovseg_core.models.config`` imports without torch); open_clip and sam2
load only when a model is built. ``ovseg_core.models.registry`` maps encoder names to text encoders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ovseg_core._lazy import lazy_exports

if TYPE_CHECKING:
    from ovseg_core.models.config import OpenClipConfig, Sam2Config
    from ovseg_core.models.open_clip_encoder import OpenClipEncoder
    from ovseg_core.models.sam2_masks import Sam2MaskGenerator


def make_models(
    clip_config: OpenClipConfig | None = None, sam2_config: Sam2Config | None = None
) -> tuple[Sam2MaskGenerator, OpenClipEncoder]:
    """The reference pair (SAM 2.1 large, OpenCLIP ViT-B-16 laion2b) or the configured ones:
    -> (mask generator, image+text encoder). Raises ``ModelLoadError`` when weights cannot be had."""
    from ovseg_core.models.open_clip_encoder import OpenClipEncoder
    from ovseg_core.models.sam2_masks import Sam2MaskGenerator

    return Sam2MaskGenerator.from_config(sam2_config), OpenClipEncoder.from_config(clip_config)


_EXPORTS = {
    "SCALES": "ovseg_core.models.protocols",
    "ImageEncoder": "ovseg_core.models.protocols",
    "MaskGenerator": "ovseg_core.models.protocols",
    "MaskSet": "ovseg_core.models.protocols",
    "OpenClipConfig": "ovseg_core.models.config",
    "OpenClipEncoder": "ovseg_core.models.open_clip_encoder",
    "PaletteImageEncoder": "ovseg_core.models.palette_models",
    "PaletteMaskGenerator": "ovseg_core.models.palette_models",
    "Sam2Config": "ovseg_core.models.config",
    "Sam2MaskGenerator": "ovseg_core.models.sam2_masks",
    "TextEncoder": "ovseg_core.models.protocols",
    "Vocabulary": "ovseg_core.models.palette_models",
    "VocabularyTextEncoder": "ovseg_core.models.palette_models",
    "group_by_scale": "ovseg_core.models.mask_scales",
    "mask_nms": "ovseg_core.models.mask_scales",
    "mask_nms_keep": "ovseg_core.models.mask_scales",
    "scales_with_nms": "ovseg_core.models.mask_scales",
    "tiny_open_clip": "ovseg_core.models.open_clip_encoder",
    "tiny_sam2": "ovseg_core.models.sam2_masks",
}
__all__ = sorted([*_EXPORTS, "make_models"])
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
