"""Per-view language supervision: one CLIP feature per mask and pixel -> feature maps.

The layout is LangSplatV2's cache format: ``features`` [N_total, D] holds the masks of the four
scales concatenated in ``SCALES`` order (default, s, m, l); ``seg_maps`` [4, H, W] maps each
pixel to a row of ``features`` per scale (-1 = no mask); ``lengths`` [4] counts masks per scale.
Training reads one ``feature_level`` (0-3).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ovseg_core.models.protocols import SCALES, MaskSet

_NORM_TOL = 1e-3


@dataclasses.dataclass
class ViewFeatures:
    """CLIP features of one view's masks and where they lie."""

    features: np.ndarray
    """``[N_total, D]`` float32, rows L2-normalised; scales concatenated in ``SCALES`` order."""
    seg_maps: np.ndarray
    """``[4, H, W]`` int32: pixel -> row of ``features`` per scale (cumulative over scales), -1 = no mask."""
    lengths: np.ndarray
    """``[4]`` int64 masks per scale."""
    masks: dict[str, MaskSet] | None = None
    """The masks per scale (``{scale}_segmentations`` etc. of the cache); None when loaded without them."""

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features)
        self.seg_maps = np.asarray(self.seg_maps)
        self.lengths = np.asarray(self.lengths)
        if self.features.ndim != 2 or self.features.dtype != np.float32:
            raise ValueError(f"features must be [N, D] float32, got {list(self.features.shape)} {self.features.dtype}")
        if self.seg_maps.ndim != 3 or self.seg_maps.shape[0] != len(SCALES) or self.seg_maps.dtype != np.int32:
            raise ValueError(f"seg_maps must be [4, H, W] int32, got {list(self.seg_maps.shape)} {self.seg_maps.dtype}")
        if self.lengths.shape != (len(SCALES),) or self.lengths.dtype != np.int64 or (self.lengths < 0).any():
            raise ValueError(f"lengths must be [4] non-negative int64, got {self.lengths!r}")
        if int(self.lengths.sum()) != self.features.shape[0]:
            raise ValueError(f"lengths sum to {int(self.lengths.sum())} but features has {self.features.shape[0]} rows")
        if not np.isfinite(self.features).all():
            raise ValueError("features contain non-finite values")
        norms = np.linalg.norm(self.features, axis=1)
        if norms.size and np.abs(norms - 1.0).max() > _NORM_TOL:
            raise ValueError(f"features must be L2-normalised; row norms span [{norms.min():.4g}, {norms.max():.4g}]")
        for level, (start, count) in enumerate(zip(self.offsets, self.lengths)):
            seg = self.seg_maps[level]
            ok = (seg == -1) | ((seg >= start) & (seg < start + count))
            if not ok.all():
                raise ValueError(
                    f"seg_maps[{level}] ({SCALES[level]}) must hold -1 or rows {start}..{start + count - 1}; "
                    f"found {int(seg[~ok][0])}"
                )
        if self.masks is not None:
            for level, scale in enumerate(SCALES):
                ms = self.masks.get(scale)
                if ms is None or len(ms) != self.lengths[level]:
                    got = None if ms is None else len(ms)
                    raise ValueError(f"masks[{scale!r}] must hold {int(self.lengths[level])} masks, got {got}")

    @property
    def num_masks(self) -> int:
        """``N_total``, masks over all scales."""
        return int(self.features.shape[0])

    @property
    def embed_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def height(self) -> int:
        return int(self.seg_maps.shape[1])

    @property
    def width(self) -> int:
        return int(self.seg_maps.shape[2])

    @property
    def offsets(self) -> np.ndarray:
        """``[4]`` int64: the first row of each scale in ``features``."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def level_features(self, level: int) -> np.ndarray:
        """The features of one scale, ``[lengths[level], D]``."""
        start = int(self.offsets[_check_level(level)])
        return self.features[start : start + int(self.lengths[level])]

    def level_seg_map(self, level: int) -> np.ndarray:
        """``[H, W]`` int32 pixel -> row of ``level_features(level)``, -1 = no mask."""
        seg = self.seg_maps[_check_level(level)]
        return np.where(seg >= 0, seg - self.offsets[level], -1).astype(np.int32)

    def level_valid_mask(self, level: int) -> np.ndarray:
        """``[H, W]`` bool: pixels covered by a mask of this scale."""
        return self.seg_maps[_check_level(level)] >= 0


def build_seg_maps(masks: dict[str, MaskSet], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel -> feature-row maps ``[4, H, W]`` int32 and mask counts ``[4]`` int64.

    Within a scale, larger masks are painted first so the smallest mask covering a pixel wins
    (LangSplat's order); rows count up across scales in ``SCALES`` order.
    """
    seg_maps = np.full((len(SCALES), height, width), -1, dtype=np.int32)
    lengths = np.zeros(len(SCALES), dtype=np.int64)
    offset = 0
    for level, scale in enumerate(SCALES):
        segs = np.asarray(masks[scale].segmentations, dtype=bool)
        lengths[level] = len(segs)
        areas = segs.sum(axis=(1, 2))
        for j in np.argsort(-areas, kind="stable"):
            seg_maps[level][segs[j]] = offset + j
        offset += len(segs)
    return seg_maps, lengths


def _check_level(level: int) -> int:
    if not 0 <= level < len(SCALES):
        raise ValueError(f"feature level must be in 0..{len(SCALES) - 1} ({', '.join(SCALES)}), got {level}")
    return level
