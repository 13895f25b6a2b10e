"""Mask crops for the image encoder, exactly as LangSplat / LangSplatV2 make them.

Per mask: crop the image to the mask's XYWH box (truncated to integers), zero the pixels
outside the mask, pad to a square with the crop centred, resize bilinearly to the encoder's
input size. The reference does the resize with ``cv2.resize`` on uint8 (INTER_LINEAR); this is
the same sampling (half-pixel centres, no antialiasing) in torch, rounded to 8-bit levels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.models.protocols import MaskSet


def mask_crops(image: np.ndarray, masks: MaskSet, size: int) -> torch.Tensor:
    """Square crops of every mask.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        masks: ``M`` masks of that image (``segmentations`` ``[M, H, W]``, ``bboxes`` ``[M, 4]`` XYWH).
        size: Output side in pixels (the encoder's ``input_size``, 224 for ViT-B-16).

    Returns:
        ``[M, 3, size, size]`` float32 in [0, 1].
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be [H, W, 3] uint8, got {list(image.shape)} {image.dtype}")
    height, width = image.shape[:2]
    segs = np.asarray(masks.segmentations)
    if segs.ndim != 3 or segs.shape[1:] != (height, width):
        raise ValueError(f"masks must be [M, {height}, {width}] for a {width}x{height} image, got {list(segs.shape)}")
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    out = torch.empty((len(segs), 3, size, size), dtype=torch.float32)
    for j, (seg, bbox) in enumerate(zip(segs, np.asarray(masks.bboxes))):
        out[j] = _square_crop(image, seg, bbox, size)
    return out


def _square_crop(image: np.ndarray, seg: np.ndarray, bbox: np.ndarray, size: int) -> torch.Tensor:
    height, width = image.shape[:2]
    x, y, w, h = (int(v) for v in bbox)  # int() truncation, as the reference's map(int, bbox)
    # SAM boxes give w = x_max - x_min, so a one-pixel-wide mask has w = 0; keep at least a pixel
    x, y = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
    w, h = max(w, 1), max(h, 1)
    crop = image[y : y + h, x : x + w].copy()
    crop[~seg[y : y + h, x : x + w].astype(bool)] = 0
    ch, cw = crop.shape[:2]
    side = max(ch, cw)
    square = np.zeros((side, side, 3), dtype=np.uint8)
    if ch > cw:
        square[:, (ch - cw) // 2 : (ch - cw) // 2 + cw] = crop
    else:
        square[(cw - ch) // 2 : (cw - ch) // 2 + ch, :] = crop
    t = torch.from_numpy(square).permute(2, 0, 1)[None].to(torch.float32)
    resized = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return resized[0].round_().clamp_(0, 255) / 255.0
