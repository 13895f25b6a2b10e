"""Per-frame evaluation pictures: relevancy heat map over the photo, GT outline, predicted mask."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ovseg_core.colormaps import heat_overlay

GT_COLOUR = (40, 120, 255)
PRED_COLOUR = (255, 40, 40)
PEAK_COLOUR = (255, 255, 255)
MIN_WIDTH = 320
"""Smaller frames are enlarged (nearest neighbour, integer factor) so the caption and outlines stay legible."""


def outline(mask: np.ndarray) -> np.ndarray:
    """``[H, W]`` bool: pixels of ``mask`` with a 4-neighbour outside it (or on the image edge)."""
    m = np.asarray(mask, bool)
    inner = np.zeros_like(m)
    inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return m & ~inner


def prompt_panel(
    rgb: np.ndarray,
    relevancy: np.ndarray,
    gt_mask: np.ndarray,
    pred_mask: np.ndarray,
    peaks_xy: np.ndarray,
    caption: str,
) -> np.ndarray:
    """``[H + 14, W, 3]`` uint8: turbo heat of ``relevancy`` ``[H, W]`` (above 0.5) over ``rgb``
    ``[H, W, 3]`` uint8, the GT outline in blue, the predicted mask tinted and outlined in red, the
    localisation peaks as white dots, and a caption strip on top. Frames narrower than ``MIN_WIDTH``
    are enlarged by an integer factor ``s``: ``[s * H + 14, s * W, 3]``."""
    img = heat_overlay(rgb.astype(np.float32) / 255.0, np.asarray(relevancy, np.float32), floor=0.5).astype(np.float32)
    pred = np.asarray(pred_mask, bool)
    img[pred] = 0.75 * img[pred] + 0.25 * np.array(PRED_COLOUR)
    img[outline(pred)] = PRED_COLOUR
    img[outline(gt_mask)] = GT_COLOUR
    out = np.clip(img, 0, 255).astype(np.uint8)
    for x, y in np.asarray(peaks_xy).reshape(-1, 2)[:64]:  # a plateau can hold many pixels; a few mark it
        out[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = PEAK_COLOUR
    s = max(1, -(-MIN_WIDTH // out.shape[1]))
    out = np.repeat(np.repeat(out, s, axis=0), s, axis=1)
    w = out.shape[1]
    strip = Image.new("RGB", (w, 14), (0, 0, 0))
    ImageDraw.Draw(strip).text((2, 1), caption, fill=(255, 255, 255))
    return np.concatenate([np.asarray(strip), out], axis=0)


def frame_picture(panels: list[np.ndarray]) -> np.ndarray:
    """Panels stacked vertically with a 2-pixel gap: ``[sum(H_i) + gaps, W, 3]`` uint8."""
    gap = np.zeros((2, panels[0].shape[1], 3), np.uint8)
    rows: list[np.ndarray] = []
    for p in panels:
        rows += [p, gap]
    return np.concatenate(rows[:-1], axis=0)
