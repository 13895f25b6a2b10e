"""View-mode colouring of rendered frames, in one place for the viewer and ``ovseg render``.

A renderer gives colour, opacity, depth and blended feature channels; this module turns them into
what a person looks at: depth colouring, a relevancy heat map or overlay, a prompt mask, PCA
colours, and the selection drawn in place (tint and outline) on top of any of them. Everything is
numpy on ``[H, W, ...]`` arrays; no GUI, no renderer.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from ovseg_core.colormaps import COLORMAPS

ViewMode = Literal["rgb", "relevancy", "heatmap", "mask", "pca", "depth", "selection"]
VIEW_MODES: tuple[str, ...] = ("rgb", "relevancy", "heatmap", "mask", "pca", "depth", "selection")
LEGEND_MODES: tuple[str, ...] = ("relevancy", "heatmap")
"""Modes whose colours come from the colour map (the others show no legend)."""
DIM = 0.3
"""Brightness of what a prompt did not match (mask mode), and of the whole frame when nothing matches."""
SELECTION_COLOR = np.array([1.0, 0.2, 0.9], np.float32)
SELECTION_TINT = 0.45
"""Share of the selection colour blended into selected pixels (the outline is drawn at full strength)."""
COVERED = 0.5
"""A pixel shows a channel's Gaussians when their blended weight, over the pixel's opacity, reaches this."""


def to_u8(img: np.ndarray) -> np.ndarray:
    """Float colours ``[..., 3]`` in [0, 1] (clipped) -> uint8."""
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def normalised(channel: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A blended per-Gaussian scalar ``[H, W]`` divided by the pixel's opacity ``[H, W]``: the
    value of the Gaussians the pixel shows (0 where the pixel is mostly background)."""
    return np.where(alpha >= 0.5, channel / np.maximum(alpha, 1e-6), 0.0)


def depth_range(depth: np.ndarray, alpha: np.ndarray) -> tuple[float, float]:
    """The 2nd and 98th percentiles of ``depth`` over covered pixels (what ``depth_unit`` stretches)."""
    valid = alpha > 0.5
    lo, hi = np.percentile(depth[valid], [2, 98]) if valid.any() else (0.0, 1.0)
    return float(lo), float(hi)


def depth_unit(
    depth: np.ndarray, alpha: np.ndarray, span: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Expected depth ``[H, W]`` stretched to [0, 1] (near -> far) between ``span`` (default: its
    ``depth_range``), and the covered pixels ``[H, W]`` bool."""
    lo, hi = span if span is not None else depth_range(depth, alpha)
    return np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1), alpha > 0.5


def depth_image(
    depth: np.ndarray, alpha: np.ndarray, colormap: str | None = "turbo", span: tuple[float, float] | None = None
) -> np.ndarray:
    """uint8 ``[H, W, 3]`` of depth: ``colormap`` with near hot, or grey with near dark (None);
    background black. ``span``: the depths stretched over the colours (default: this frame's)."""
    unit, valid = depth_unit(depth, alpha, span)
    if colormap is None:
        img = np.repeat(unit[..., None], 3, axis=2)
    else:
        img = COLORMAPS[colormap](1 - unit)
    return to_u8(img * valid[..., None])


def outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` ``[H, W]`` bool that touch a pixel outside it (4-neighbours)."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def heat_overlay(rgb: np.ndarray, relevancy: np.ndarray, region: np.ndarray, floor: float, colormap: str) -> np.ndarray:
    """``rgb`` float ``[H, W, 3]`` with ``region`` ``[H, W]`` bool painted by ``relevancy``
    (stretched from ``floor`` to 1) over the region's grey shading, outlined in white and black, so
    the overlay reads on any colour (a red heat on a red object is still outlined and shaded)."""
    heat = COLORMAPS[colormap](np.clip((relevancy - floor) / max(1.0 - floor, 1e-6), 0, 1))
    grey = rgb.mean(axis=-1, keepdims=True)
    painted = 0.75 * heat + 0.25 * grey
    out = np.where(region[..., None], painted, rgb)
    edge = outline(region)
    ring = grow(region) & ~region
    out[ring] = 0.0
    out[edge] = 1.0
    return out


def grow(mask: np.ndarray) -> np.ndarray:
    """``mask`` ``[H, W]`` bool with its 4-neighbours added."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def tint_selection(img: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """``img`` float ``[H, W, 3]`` with the ``selected`` ``[H, W]`` bool pixels tinted and outlined
    in the selection colour (as SuperSplat draws its selection, in every view)."""
    out = np.where(selected[..., None], (1 - SELECTION_TINT) * img + SELECTION_TINT * SELECTION_COLOR, img)
    out[outline(selected)] = SELECTION_COLOR
    return out


@dataclasses.dataclass
class FrameLayers:
    """What one render gave, per pixel, for composing a view (``[H, W]`` unless said)."""

    rgb: np.ndarray
    """``[H, W, 3]`` float colour in [0, 1]."""
    alpha: np.ndarray
    depth: np.ndarray | None = None
    relevancy: np.ndarray | None = None
    """Relevancy of what the pixel shows; None without a prompt (or fields)."""
    answer: np.ndarray | None = None
    """bool: the pixel shows the prompt's answer (the Gaussians it selects); None without a prompt."""
    pca: np.ndarray | None = None
    """``[H, W, 3]`` float PCA colours of the features, None without fields."""
    selected: np.ndarray | None = None
    """bool: the pixel shows selected Gaussians; None when nothing is selected."""


def compose(
    mode: str,
    layers: FrameLayers,
    *,
    threshold: float = 0.5,
    colormap: str = "turbo",
    matched: bool | None = None,
    span: tuple[float, float] | None = None,
) -> np.ndarray:
    """The uint8 ``[H, W, 3]`` frame of ``mode`` from ``layers``, with the selection drawn in place.

    A prompt's answer is what ``layers.answer`` marks, in every mode: relevancy paints it with the
    colour map over the colour frame, mask keeps it and dims the rest, heatmap colours the frame by
    relevancy (LERF). When the answer is empty the frame is the plain frame dimmed (no speckle of
    pixels whose blended relevancy happens to pass the threshold).

    ``layers`` may be a strip of a larger frame: ``matched`` (the frame shows any of the answer)
    and ``span`` (its ``depth_range``) are then the whole frame's, not the strip's."""
    if mode not in VIEW_MODES:
        raise ValueError(f"unknown view mode {mode!r}; choose one of {', '.join(VIEW_MODES)}")
    rgb, alpha = layers.rgb, layers.alpha
    prompt = layers.relevancy is not None and layers.answer is not None
    if matched is None:
        matched = prompt and bool(layers.answer.any())  # type: ignore[union-attr]
    matched = prompt and matched
    if mode == "depth":
        if layers.depth is None:
            raise ValueError("depth mode needs the rendered depth")
        img = depth_image(layers.depth, alpha, span=span).astype(np.float32) / 255.0
    elif mode == "pca":
        img = layers.pca if layers.pca is not None else rgb
    elif mode in ("relevancy", "heatmap", "mask") and prompt and not matched:
        img = DIM * rgb
    elif mode == "relevancy" and matched:
        img = heat_overlay(rgb, layers.relevancy, layers.answer, threshold, colormap)  # type: ignore[arg-type]
    elif mode == "heatmap":  # LERF-style: the whole frame coloured by relevancy, 0.5 (neutral) to 1
        if matched:
            img = COLORMAPS[colormap](np.clip((layers.relevancy - 0.5) / 0.5, 0, 1)) * alpha[..., None]  # type: ignore[operator]
        else:
            img = DIM * rgb
    elif mode == "mask" and matched:
        img = np.where(layers.answer[..., None], rgb, DIM * rgb)  # type: ignore[index]
    elif mode == "selection" and layers.selected is not None:
        img = np.where(layers.selected[..., None], rgb, DIM * rgb)
    else:
        img = rgb
    if layers.selected is not None and layers.selected.any():
        img = tint_selection(np.asarray(img, np.float32), layers.selected)
    return to_u8(img)


def gaussian_colors(
    mode: str,
    base: np.ndarray,
    *,
    relevancy: np.ndarray | None = None,
    answer: np.ndarray | None = None,
    selection: np.ndarray | None = None,
    threshold: float = 0.5,
    colormap: str = "turbo",
) -> np.ndarray:
    """Per-Gaussian RGB ``[N, 3]`` in [0, 1] for browser-side splats: ``compose``'s colouring, per
    Gaussian (``base`` ``[N, 3]`` colours; ``relevancy`` ``[N]``; ``answer``, ``selection`` ``[N]`` bool)."""
    out = base
    if relevancy is not None and answer is not None and mode in ("relevancy", "heatmap", "mask"):
        if not answer.any():
            out = DIM * base
        elif mode == "mask":
            out = np.where(answer[:, None], base, DIM * base)
        else:
            heat = COLORMAPS[colormap](np.clip((relevancy - threshold) / max(1.0 - threshold, 1e-6), 0, 1))
            out = np.where(answer[:, None], 0.75 * heat + 0.25 * base.mean(1, keepdims=True), base)
    elif mode == "selection" and selection is not None:
        out = np.where(selection[:, None], base, DIM * base)
    if selection is not None and selection.any():
        out = np.where(selection[:, None], (1 - SELECTION_TINT) * out + SELECTION_TINT * SELECTION_COLOR, out)
    return np.asarray(out, np.float32)
