"""Per-pixel relevancy that means what the 3D answer means: the one rule for relevancy images.

A prompt's answer is a set of Gaussians (relevancy above the threshold, made spatially
consistent). Scoring each pixel's *blended feature* instead (LERF's definition) answers another
question: on a faint splat dozens of Gaussians blend per pixel, an object's edge mixes its
feature with the table's, and the pixel's score passes the threshold where the 3D answer does
not (or the other way round), so relevancy images, masks and the 3D selection disagree at the
same threshold, and no threshold makes them agree.

Here a pixel shows the Gaussian with the most blending weight there (the one a click there
picks), and its relevancy is that Gaussian's, first moved to its side of the threshold
(``answer_scores``: the answer's Gaussians at least just above it, the rest at most at it). So at
the threshold a pixel passes exactly when the Gaussian it shows is in the 3D answer, and below
or above it the image shows the relevancy of what the pixel shows. Mostly empty pixels (opacity
below one half, as ``frames.normalised``) show nothing: relevancy 0.

Lifted and trained fields render alike: only per-Gaussian relevancy is needed. The LERF-OVS
evaluation keeps its protocol's own per-pixel scoring of blended features (``ovseg_core.eval``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ovseg_core.camera import Camera
from ovseg_core.render.types import Renderer, RenderOutput
from ovseg_core.scene import GaussianScene

MIN_ALPHA = 0.5
"""Pixels with less rendered opacity than this are mostly empty and show nothing."""


@dataclasses.dataclass
class PixelAnswer:
    """A prompt's answer seen by one camera."""

    relevancy: np.ndarray
    """``[H, W]`` float32 in [0, 1]: the relevancy of the Gaussian each pixel shows (0 where the
    pixel is mostly empty); above the threshold exactly on ``answer``."""
    answer: np.ndarray
    """``[H, W]`` bool: the Gaussian the pixel shows is in the 3D answer."""


def answer_scores(relevancy: np.ndarray, answer: np.ndarray, threshold: float) -> np.ndarray:
    """``[N]`` float32: ``relevancy`` [N] with the ``answer`` [N] bool Gaussians raised just above
    ``threshold`` where they are below it and the others lowered to it where above, so
    ``scores > threshold`` is exactly ``answer``."""
    rel = np.asarray(relevancy, np.float32)
    answer = np.asarray(answer, bool)
    if rel.shape != answer.shape:
        raise ValueError(f"relevancy {list(rel.shape)} and answer {list(answer.shape)} must have one shape")
    above = np.nextafter(np.float32(threshold), np.float32(np.inf))
    return np.where(answer, np.maximum(rel, above), np.minimum(rel, np.float32(threshold))).astype(np.float32)


def shown_gaussians(out: RenderOutput) -> np.ndarray:
    """``[H, W]`` int64 from a render with ``top_k >= 1`` (first camera): the Gaussian with the
    most blending weight at each pixel, -1 where the pixel is mostly empty."""
    if out.contrib_ids is None:
        raise ValueError("the render has no contributions; render with top_k=1")
    ids = out.contrib_ids[0, ..., 0].long().cpu().numpy()
    alpha = out.alpha[0, ..., 0].float().cpu().numpy()
    return np.where(alpha >= MIN_ALPHA, ids, -1)


def from_shown(shown: np.ndarray, relevancy: np.ndarray, answer: np.ndarray, threshold: float) -> PixelAnswer:
    """The ``PixelAnswer`` of ``shown`` ``[H, W]`` (``shown_gaussians``) for per-Gaussian
    ``relevancy`` [N] and ``answer`` [N] bool at ``threshold``."""
    scores = answer_scores(relevancy, answer, threshold)
    valid = shown >= 0
    at = np.where(valid, shown, 0)
    rel = np.where(valid, scores[at], 0.0).astype(np.float32)
    return PixelAnswer(relevancy=rel, answer=valid & np.asarray(answer, bool)[at])


def render_pixel_answer(
    renderer: Renderer,
    scene: GaussianScene,
    camera: Camera,
    relevancy: np.ndarray,
    answer: np.ndarray,
    threshold: float,
) -> PixelAnswer:
    """Render a prompt's answer ``answer`` [N] bool and its per-Gaussian ``relevancy`` [N] (at
    ``threshold``) to ``camera``'s pixels, by the rule above."""
    out = renderer.render(scene, camera, top_k=1)
    return from_shown(shown_gaussians(out), relevancy, answer, threshold)


def answers_per_pixel(shown: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """``[H, W, T]`` bool: the pixel answers of ``answers`` ``[N, T]`` bool (one per threshold) in
    one look-up, for sweeps over thresholds."""
    valid = shown >= 0
    return valid[..., None] & np.asarray(answers, bool)[np.where(valid, shown, 0)]
