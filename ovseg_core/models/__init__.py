"""2D models behind small protocols: SAM 2 masks at four scales, OpenCLIP image/text embeddings.

Importing this package does not import open_clip or sam2; they load when a model is built.
"""

from ovseg_core.models.mask_scales import group_by_scale, mask_nms, mask_nms_keep, scales_with_nms
from ovseg_core.models.open_clip_encoder import OpenClipConfig, OpenClipEncoder, tiny_open_clip
from ovseg_core.models.palette_models import (
    PaletteImageEncoder,
    PaletteMaskGenerator,
    Vocabulary,
    VocabularyTextEncoder,
)
from ovseg_core.models.protocols import SCALES, ImageEncoder, MaskGenerator, MaskSet, TextEncoder
from ovseg_core.models.sam2_masks import Sam2Config, Sam2MaskGenerator, tiny_sam2


def make_models(
    clip_config: OpenClipConfig | None = None, sam2_config: Sam2Config | None = None
) -> tuple[Sam2MaskGenerator, OpenClipEncoder]:
    """The reference pair (SAM 2.1 large, OpenCLIP ViT-B-16 laion2b) or the configured ones:
    -> (mask generator, image+text encoder). Raises ``ModelLoadError`` when weights cannot be had."""
    return Sam2MaskGenerator.from_config(sam2_config), OpenClipEncoder.from_config(clip_config)


__all__ = [
    "SCALES",
    "ImageEncoder",
    "MaskGenerator",
    "MaskSet",
    "OpenClipConfig",
    "OpenClipEncoder",
    "PaletteImageEncoder",
    "PaletteMaskGenerator",
    "Sam2Config",
    "Sam2MaskGenerator",
    "TextEncoder",
    "Vocabulary",
    "VocabularyTextEncoder",
    "group_by_scale",
    "make_models",
    "mask_nms",
    "mask_nms_keep",
    "scales_with_nms",
    "tiny_open_clip",
    "tiny_sam2",
]
