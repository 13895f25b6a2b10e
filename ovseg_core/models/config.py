"""Settings of the 2D models (no torch: CLIs parse them before any model loads)."""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass
class OpenClipConfig:
    """Which OpenCLIP model to load and how to run it."""

    model: str = "ViT-B-16"
    """open_clip architecture name (see ``open_clip.list_models()``)."""
    pretrained: str = "laion2b_s34b_b88k"
    """Weights: an open_clip tag (downloaded once from the Hugging Face hub, then cached), a local
    checkpoint file (e.g. ``/ckpt/open_clip_model.safetensors``), or ``local-dir:/dir`` /
    ``hf-hub:org/repo`` (config and weights together; ``model`` is then ignored)."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """Where to run: "auto" picks cuda when available, else cpu."""
    batch_size: int = 32
    """Images or texts per forward pass."""


Sam2Checkpoint = Literal["large", "base_plus", "small", "tiny"]

SAM2_CHECKPOINTS: dict[str, tuple[str, str, str]] = {
    "large": ("facebook/sam2.1-hiera-large", "configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
    "base_plus": (
        "facebook/sam2.1-hiera-base-plus",
        "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "sam2.1_hiera_base_plus.pt",
    ),
    "small": ("facebook/sam2.1-hiera-small", "configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "tiny": ("facebook/sam2.1-hiera-tiny", "configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
}
"""checkpoint -> (Hugging Face hub id, config packaged with sam2, weights file name in the hub repo)."""


@dataclasses.dataclass
class Sam2Config:
    """SAM 2 model and mask-generation settings; defaults are the LangSplatV2 reference's."""

    checkpoint: Sam2Checkpoint = "large"
    """SAM 2.1 size; picks the packaged model config and the hub repo ``facebook/sam2.1-hiera-<size>``."""
    checkpoint_path: str | None = None
    """Local ``.pt`` with a ``"model"`` state dict (as released) for ``checkpoint``'s size; skips the hub."""
    points_per_side: int = 32
    """Point-prompt grid is points_per_side x points_per_side (per crop layer, see below)."""
    points_per_batch: int = 256
    """Prompts decoded at once (speed and memory only; not part of the output)."""
    pred_iou_thresh: float = 0.5
    """Drop masks whose predicted IoU is not above this (0 disables)."""
    stability_score_thresh: float = 0.85
    """Drop masks whose stability score is below this (0 disables)."""
    crop_n_layers: int = 1
    """Extra passes over 2^k x 2^k image crops (k = 1..n) to find small objects."""
    crop_n_points_downscale_factor: int = 2
    """Crop layer k uses points_per_side / factor^k points per side."""
    min_mask_region_area: int = 100
    """Fill holes and drop islands up to this area, in SAM's 256x256 low-res mask pixels."""
    box_nms_thresh: float = 0.7
    """Box IoU above which the lower-predicted-IoU mask of a pair is dropped (within a crop)."""
    nms_iou_thr: float = 0.8
    """LangSplat mask NMS: drop a mask whose mask IoU with a higher-scored one exceeds this."""
    nms_score_thr: float = 0.7
    """LangSplat mask NMS: drop masks with predicted_iou * stability not above this (the best 3 stay if none is)."""
    nms_inner_thr: float = 0.5
    """LangSplat mask NMS: drop masks lying inside another one (see ``mask_scales.mask_nms_keep``)."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """Where to run: "auto" picks cuda when available, else cpu."""
