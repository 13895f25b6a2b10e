"""A tab's frames: one render of its state (colour, the feature channels the view mode needs, the
selection's channel in every mode, and each pixel's most-weighted Gaussian for a prompt's pixels),
coloured by ``ovseg_core.render.frames``."""

from __future__ import annotations

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


def render(session: ViewerSession, st: TabState, camera: Camera, mode: str) -> np.ndarray:
    """The uint8 ``[H, W, 3]`` frame of ``st`` (one snapshot: the answer, selection and scene all
    come from it) seen by ``camera`` in ``mode``.

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
        return frames.compose(mode, layers, threshold=prompt.threshold, colormap=prompt.colormap)
    feat = out.features[0].float().cpu()
    at = 0
    if mode == "pca" and query is not None:
        layers.pca = feat[..., at : at + 3].numpy() / np.maximum(alpha, 1e-6)[..., None] * (alpha > 0.5)[..., None]
        at += 3
    if st.selection.any():
        layers.selected = frames.normalised(feat[..., at].numpy(), alpha) >= COVERED
    return frames.compose(mode, layers, threshold=prompt.threshold, colormap=prompt.colormap)


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
