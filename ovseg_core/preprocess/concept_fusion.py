"""ConceptFusion's local-global feature fusion (Jatavallabhula et al., 2023).

A mask's CLIP feature sees only its crop; the whole image's feature carries context. Each mask
gets a weight from how similar its feature is to the global one (softmax over the image's masks),
and its fused feature is w * global + (1 - w) * local, L2-normalised.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.errors import UsageError
from ovseg_core.models.protocols import ImageEncoder, MaskSet
from ovseg_core.preprocess.crops import mask_crops


def global_feature(image: np.ndarray, image_encoder: ImageEncoder) -> torch.Tensor:
    """The whole image, padded square and resized like a mask crop, encoded: ``[D]``."""
    H, W = image.shape[:2]
    whole = MaskSet(
        segmentations=np.ones((1, H, W), bool),
        bboxes=np.array([[0, 0, W, H]], np.float32),
        areas=np.array([H * W], np.int64),
        predicted_ious=np.ones(1, np.float32),
        stability_scores=np.ones(1, np.float32),
    )
    with torch.inference_mode():
        emb = image_encoder.encode_images(mask_crops(image, whole, image_encoder.input_size))
    return F.normalize(emb[0].detach().to("cpu", torch.float32), dim=0)


def fuse_local_global(local: torch.Tensor, global_feat: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``local`` [M, D] mask features and ``global_feat`` [D] -> fused [M, D] (unit rows).

    w = softmax_i(cos(local_i, global) / temperature); fused_i = w_i global + (1 - w_i) local_i."""
    if local.shape[0] == 0:
        return local
    if temperature <= 0:
        raise UsageError(f"fusion temperature must be > 0, got {temperature}")
    sims = F.normalize(local, dim=-1) @ F.normalize(global_feat, dim=0)
    w = torch.softmax(sims / temperature, dim=0)[:, None]
    return F.normalize(w * global_feat[None] + (1 - w) * local, dim=-1)
