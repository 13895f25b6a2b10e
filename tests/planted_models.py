"""Test models with known answers for scenes of flat-coloured objects, built on the product's
palette demo models (``ovseg_core.models.palette_models``):

- ``ColourMaskGenerator``: one mask per palette colour present, counting its calls (cache tests).
- ``PlantedEncoder``: an image+text encoder whose embedding of a mask crop is the planted feature
  of the object whose colour the crop shows, and whose text embedding of an object's exact name is
  that feature; anything else embeds as the shared generic vector (like CLIP's "object").
"""

from __future__ import annotations

import numpy as np
import torch

from ovseg_core.models.palette_models import PaletteImageEncoder, PaletteMaskGenerator, Vocabulary


class ColourMaskGenerator(PaletteMaskGenerator):
    def __init__(self, palette: np.ndarray, tolerance: float = 0.2) -> None:
        super().__init__(palette, tolerance)
        self.calls = 0

    def generate(self, image: np.ndarray):  # noqa: ANN201
        self.calls += 1
        return super().generate(image)


class PlantedEncoder(PaletteImageEncoder):
    def __init__(
        self, palette: np.ndarray, names: list[str], dim: int = 64, input_size: int = 32, seed: int = 0
    ) -> None:
        super().__init__(Vocabulary.build(names, palette, dim=dim, seed=seed, name="test-planted"), input_size)
        self.names = list(names)

    def encode_texts(self, texts) -> torch.Tensor:  # noqa: ANN001
        v = self.vocabulary
        return torch.stack([v.features[self.names.index(t)] if t in self.names else v.generic for t in texts])
