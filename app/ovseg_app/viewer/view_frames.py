"""A tab's frames: one render of its state (colour, the feature channels the view mode needs, the
selection's channel in every mode, and each pixel's most-weighted Gaussian for a prompt's pixels),
coloured by ``ovseg_core.render.frames``. Large frames (screenshots) render in strips
(``render_in_strips``), so their memory is a strip's, not the frame's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from ovseg_app.viewer.tab_state import PromptState, TabState
from ovseg_core.camera import Camera
from ovseg_core.errors import UsageError
from ovseg_core.fields.feature_pca import pca_colors
from ovseg_core.render import frames
from ovseg_core.render.frames import COVERED, VIEW_MODES, FrameLayers
from ovseg_core.render.pixel_answer import from_shown, shown_gaussians

if TYPE_CHECKING:
    from ovseg_app.viewer.session import ViewerSession

PROMPT_MODES = ("relevancy", "heatmap", "mask")
STRIP_PIXELS = 1 << 20
"""Pixels rendered at once by ``render_in_strips`` (a frame up to this size is one render)."""
STRIP_HALO = 2
"""Rows rendered beyond each side of a strip and dropped: outlines look one pixel past an edge."""


def render(session: ViewerSession, st: TabState, camera: Camera, mode: str) -> np.ndarray:
    """The uint8 ``[H, W, 3]`` frame of ``st`` (one snapshot: the answer, selection and scene all
    come from it) seen by ``camera`` in ``mode``."""
    layers = frame_layers(session, st, camera, mode)
    return frames.compose(mode, layers, threshold=st.prompt.threshold, colormap=st.prompt.colormap)


def render_in_strips(
    session: ViewerSession,
    st: TabState,
    camera: Camera,
    mode: str,
    check: Callable[[], None] = lambda: None,
    strip_pixels: int = STRIP_PIXELS,
) -> np.ndarray:
    """``render``'s frame, rendered ``strip_pixels`` at a time: a 4096x4096 screenshot peaks at
    a strip's memory plus the uint8 frame. What the whole frame decides (whether it shows any of
    the answer; the depth span) comes from a first pass over the strips in the modes that need it.
    ``check`` runs between strips (a cancelled job raises there)."""
    rows = max(16, strip_pixels // camera.width)
    if camera.height <= rows:
        return render(session, st, camera, mode)
    matched, span = None, None
    if mode in ("relevancy", "heatmap", "depth"):
        shown, depths = False, []
        for layers, keep in _strips(session, st, camera, mode, rows, check):
            if layers.answer is not None:
                shown = shown or bool(layers.answer[keep].any())
            if layers.depth is not None:
                depths.append(layers.depth[keep][layers.alpha[keep] > 0.5])
        matched = shown
        if depths:
            covered = np.concatenate(depths)
            span = frames.depth_range(covered, np.ones_like(covered))
    out = np.empty((camera.height, camera.width, 3), np.uint8)
    y = 0
    for layers, keep in _strips(session, st, camera, mode, rows, check):
        strip = frames.compose(
            mode, layers, threshold=st.prompt.threshold, colormap=st.prompt.colormap, matched=matched, span=span
        )[keep]
        out[y : y + len(strip)] = strip
        y += len(strip)
    return out


def _strips(
    session: ViewerSession, st: TabState, camera: Camera, mode: str, rows: int, check: Callable[[], None]
) -> Iterator[tuple[frames.FrameLayers, slice]]:
    """Each strip's layers (with ``STRIP_HALO`` extra rows each side) and the rows of it that are its own."""
    for y0 in range(0, camera.height, rows):
        y1 = min(y0 + rows, camera.height)
        top, bottom = max(0, y0 - STRIP_HALO), min(camera.height, y1 + STRIP_HALO)
        K = camera.K.copy()
        K[1, 2] -= top  # the same rays: the strip's pixel (x, y) is the frame's (x, y + top)
        check()
        yield (
            frame_layers(session, st, Camera(camera.w2c, K, camera.width, bottom - top), mode),
            slice(y0 - top, y1 - top),
        )


def frame_layers(session: ViewerSession, st: TabState, camera: Camera, mode: str) -> FrameLayers:
    """What one render of ``st`` seen by ``camera`` gives, per pixel, for composing ``mode``.

    A prompt's pixels follow ``ovseg_core.render.pixel_answer`` (as ``ovseg query --relevancy-dir``
    and ``ovseg render --mode relevancy``): each pixel shows the relevancy of the Gaussian with
    the most blending weight there, and is in the answer exactly when that Gaussian is, so the
    frame shows what the panel counts at the same threshold."""
    if mode not in VIEW_MODES:
        raise UsageError(f"unknown view mode {mode!r}; choose one of {', '.join(VIEW_MODES)}")
    query, prompt = session.query, st.prompt
    found = session.answer(st) if mode in PROMPT_MODES else None
    channels: list[torch.Tensor] = []
    if mode == "pca" and query is not None:
        channels.append(torch.from_numpy(pca_gaussian_colors(session, prompt)))
    if st.selection.any():
        channels.append(torch.from_numpy(st.selection.astype(np.float32))[:, None])
    features = torch.cat(channels, dim=1) if channels else None
    out = session.renderer.render(st.scene, camera, features=features, top_k=1 if found is not None else 0)
    alpha = out.alpha[0, ..., 0].cpu().numpy()
    layers = FrameLayers(rgb=out.rgb[0].clamp(0, 1).cpu().numpy(), alpha=alpha)
    if mode == "depth":
        layers.depth = out.depth[0, ..., 0].cpu().numpy()
    if found is not None:
        pixels = from_shown(shown_gaussians(out), found.relevancy, found.gaussians, prompt.threshold)
        layers.relevancy, layers.answer = pixels.relevancy, pixels.answer
    if features is None:
        return layers
    feat = out.features[0].float().cpu()
    at = 0
    if mode == "pca" and query is not None:
        layers.pca = feat[..., at : at + 3].numpy() / np.maximum(alpha, 1e-6)[..., None] * (alpha > 0.5)[..., None]
        at += 3
    if st.selection.any():
        layers.selected = frames.normalised(feat[..., at].numpy(), alpha) >= COVERED
    return layers


def gaussian_colors(session: ViewerSession, st: TabState, mode: str) -> np.ndarray:
    """Per-Gaussian RGB ``[N, 3]`` in [0, 1] for browser-side splats: the frame's colouring per Gaussian."""
    base = st.scene.base_colors.detach().cpu().numpy()[:, :3].clip(0, 1).astype(np.float32)
    found = session.answer(st) if mode in PROMPT_MODES else None
    return frames.gaussian_colors(
        mode,
        base,
        relevancy=found.relevancy if found is not None else None,
        answer=found.gaussians if found is not None else None,
        selection=st.selection,
        threshold=st.prompt.threshold,
        colormap=st.prompt.colormap,
    )


def pca_gaussian_colors(session: ViewerSession, prompt: PromptState) -> np.ndarray:
    """Per-Gaussian RGB ``[N, 3]`` from the first three principal components of the decoded features."""
    query = session.query
    assert query is not None
    level = prompt.level if prompt.level is not None else session.levels[0]

    def make() -> np.ndarray:
        feats = query.levels[level].codes.features()
        return pca_colors(feats[None]).reshape(-1, 3).astype(np.float32) / 255.0

    return session.shared.cached(("pca", id(query), level), make)
