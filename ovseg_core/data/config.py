"""How a capture dataset is turned into training views."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from ovseg_core.errors import UsageError

NORMALIZATION_MODES = ("auto", "none")


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Options for ``load_dataset``."""

    image_downsample_factor: int = 1
    """Divide image width and height by this (area averaging) before preprocessing and training."""
    use_every_n_as_val: int = -1
    """Hold out every N-th view (indices 0, N, 2N, ... in name order) for validation; -1 holds out none."""
    normalization: Literal["auto", "none"] = "auto"
    """How to align the cameras with the reconstruction: ``auto`` applies the 4x4
    ``normalization_transform`` found in the reconstruction's metadata (fVDB PLYs carry the
    NormalizeScene similarity their splats were trained in), or none when it has none;
    ``none`` keeps the dataset's own world frame."""
    normalization_transform: tuple[float, ...] | None = None
    """Explicit similarity taking dataset world coordinates into the reconstruction's frame,
    16 numbers row-major (a [4, 4] array is accepted too); overrides the metadata."""

    def __post_init__(self) -> None:
        factor = self.image_downsample_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise UsageError(f"image_downsample_factor must be an integer >= 1, got {factor!r}")
        n = self.use_every_n_as_val
        if n != -1 and n < 2:
            raise UsageError(f"use_every_n_as_val must be -1 (no validation views) or >= 2, got {n}")
        if self.normalization not in NORMALIZATION_MODES:
            raise UsageError(f"normalization must be one of {NORMALIZATION_MODES}, got {self.normalization!r}")
        if self.normalization_transform is not None:
            values = np.asarray(self.normalization_transform, dtype=np.float64)
            if values.size != 16:
                raise UsageError(
                    f"normalization_transform must hold 16 numbers (a 4x4 matrix), got shape {list(values.shape)}"
                )
            if self.normalization == "none":
                raise UsageError("normalization='none' contradicts an explicit normalization_transform")
            object.__setattr__(self, "normalization_transform", tuple(float(v) for v in values.ravel()))

    def explicit_transform(self) -> np.ndarray | None:
        """The explicit ``normalization_transform`` as ``[4, 4]`` float64, or None."""
        if self.normalization_transform is None:
            return None
        return np.asarray(self.normalization_transform, dtype=np.float64).reshape(4, 4)
