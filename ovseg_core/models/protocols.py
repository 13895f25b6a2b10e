"""The 2D model seam: a mask generator and image/text encoders, as small protocols.

Everything downstream (preprocessing, lifting, queries, the viewer) takes these objects through
constructors, so users can bring other models and tests can pass tiny real ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

SCALES: tuple[str, ...] = ("default", "s", "m", "l")
"""Mask scales in cache order: every mask, then small (< 1% of the image), medium (1-10%),
large (>= 10%)."""


@dataclasses.dataclass
class MaskSet:
    """Binary masks of one image at one scale (numpy, CPU)."""

    segmentations: np.ndarray
    """[M, H, W] bool."""
    bboxes: np.ndarray
    """[M, 4] float32 XYWH in pixels."""
    areas: np.ndarray
    """[M] int64 pixel counts."""
    predicted_ious: np.ndarray
    """[M] float32."""
    stability_scores: np.ndarray
    """[M] float32."""

    def __len__(self) -> int:
        return int(self.segmentations.shape[0])

    @classmethod
    def empty(cls, height: int, width: int) -> MaskSet:
        return cls(
            segmentations=np.zeros((0, height, width), bool),
            bboxes=np.zeros((0, 4), np.float32),
            areas=np.zeros((0,), np.int64),
            predicted_ious=np.zeros((0,), np.float32),
            stability_scores=np.zeros((0,), np.float32),
        )


@runtime_checkable
class MaskGenerator(Protocol):
    """Image -> masks grouped into the four scales of ``SCALES``."""

    name: str
    """Identifies the model and every setting that changes its output (part of cache keys)."""

    def generate(self, image: np.ndarray) -> dict[str, MaskSet]:
        """``image`` [H, W, 3] uint8 RGB -> {scale: MaskSet} for every scale in ``SCALES``."""
        ...


@runtime_checkable
class ImageEncoder(Protocol):
    """Batched image embedding into the shared image-text space."""

    name: str
    """Identifies the model and weights (part of cache keys and checkpoints)."""
    embed_dim: int
    input_size: int
    """Square side in pixels that ``encode_images`` expects."""

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` [B, 3, S, S] float in [0, 1] (S = input_size) -> [B, D] L2-normalised, CPU float32."""
        ...


@runtime_checkable
class TextEncoder(Protocol):
    """Batched text embedding into the same space as an ``ImageEncoder``."""

    name: str
    embed_dim: int

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """``texts`` -> [B, D] L2-normalised, CPU float32."""
        ...
