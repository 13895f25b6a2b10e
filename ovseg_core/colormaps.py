"""Colour maps for scalar images (no matplotlib dependency)."""

from __future__ import annotations

import numpy as np

# Turbo (Mikhailov, Google 2019) as its published 5th-order polynomial fit per channel.
_TURBO = np.array(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ]
)


def turbo(values: np.ndarray) -> np.ndarray:
    """``values`` [...] in [0, 1] (clipped) -> float32 RGB [..., 3] in [0, 1]."""
    x = np.clip(np.asarray(values, np.float64), 0.0, 1.0)[..., None]
    powers = x ** np.arange(6)
    return np.clip(powers @ _TURBO.T, 0.0, 1.0).astype(np.float32)


def hot(values: np.ndarray) -> np.ndarray:
    """Black -> red -> yellow -> white, [...] in [0, 1] -> float32 [..., 3]."""
    x = np.clip(np.asarray(values, np.float32), 0.0, 1.0)[..., None]
    return np.clip(np.concatenate([3 * x, 3 * x - 1, 3 * x - 2], axis=-1), 0.0, 1.0).astype(np.float32)


def gray(values: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(values, np.float32), 0.0, 1.0)[..., None]
    return np.repeat(x, 3, axis=-1)


COLORMAPS = {"turbo": turbo, "hot": hot, "gray": gray}


def heat_overlay(
    rgb: np.ndarray, relevancy: np.ndarray, *, floor: float = 0.5, opacity: float = 0.7, colormap: str = "turbo"
) -> np.ndarray:
    """Blend a heat map of ``relevancy`` [H, W] over ``rgb`` [H, W, 3] (float in [0, 1]) where
    relevancy exceeds ``floor`` (values are stretched from ``floor`` to 1). Returns uint8 [H, W, 3]."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    r = np.clip((relevancy - floor) / max(1.0 - floor, 1e-6), 0.0, 1.0)
    a = (opacity * (relevancy > floor))[..., None]
    out = (1 - a) * rgb + a * COLORMAPS[colormap](r)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
