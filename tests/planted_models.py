"""Test-only 2D models with known answers for scenes of flat-coloured objects.

- ``ColourMaskGenerator``: one mask per palette colour present in the image (pixels within a
  colour distance), grouped into the four scales like SAM2's output.
- ``PlantedEncoder``: an image+text encoder whose embedding of a mask crop is the planted feature
  of the object whose palette colour the crop shows, and whose text embedding of an object name
  is that same feature. Like real CLIP, all object features share a common component, and the
  canonical negatives ("object", "things", ...) embed near that common component.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.models import MaskSet, group_by_scale


class ColourMaskGenerator:
    name = "test-colour-masks"

    def __init__(self, palette: np.ndarray, tolerance: float = 0.2) -> None:
        self.palette = np.asarray(palette, np.float32)
        self.tolerance = tolerance
        self.calls = 0

    def generate(self, image: np.ndarray) -> dict[str, MaskSet]:
        self.calls += 1
        rgb = image.astype(np.float32) / 255.0
        H, W = rgb.shape[:2]
        dist = np.linalg.norm(rgb[:, :, None, :] - self.palette[None, None], axis=-1)  # [H, W, K]
        nearest = dist.argmin(-1)
        close = dist.min(-1) < self.tolerance
        segs = [(nearest == k) & close for k in range(len(self.palette))]
        segs = [s for s in segs if s.sum() >= 4]
        if not segs:
            return {s: MaskSet.empty(H, W) for s in ("default", "s", "m", "l")}
        seg = np.stack(segs)
        boxes = []
        for s in seg:
            ys, xs = np.nonzero(s)
            boxes.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
        masks = MaskSet(
            segmentations=seg,
            bboxes=np.asarray(boxes, np.float32),
            areas=seg.reshape(len(seg), -1).sum(1).astype(np.int64),
            predicted_ious=np.ones(len(seg), np.float32),
            stability_scores=np.ones(len(seg), np.float32),
        )
        return group_by_scale(masks, H * W)


class PlantedEncoder:
    name = "test-planted-encoder"

    def __init__(self, palette: np.ndarray, names: list[str], dim: int = 64, input_size: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.palette = torch.as_tensor(np.asarray(palette), dtype=torch.float32)
        self.names = list(names)
        self.embed_dim = dim
        self.input_size = input_size
        self.generic = F.normalize(torch.randn(dim, generator=g), dim=0)
        own = F.normalize(torch.randn(len(names), dim, generator=g), dim=1)
        self.planted = F.normalize(self.generic + own, dim=1)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for img in images:
            lit = img.sum(0) > 0.05  # crops are zero outside the mask
            colour = img[:, lit].mean(dim=1) if lit.any() else torch.zeros(3)
            k = int(torch.linalg.norm(self.palette - colour, dim=1).argmin())
            out.append(self.planted[k])
        return torch.stack(out)

    def encode_texts(self, texts) -> torch.Tensor:
        return torch.stack([self.planted[self.names.index(t)] if t in self.names else self.generic for t in texts])
