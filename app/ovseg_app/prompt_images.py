"""A prompt's answer painted on a view for files (``ovseg query --relevancy-dir``): the one per-pixel
rule (``ovseg_core.render.pixel_answer``) coloured as the viewer's relevancy mode colours it
(``ovseg_core.render.frames``), so a written image is the frame the viewer shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ovseg_core.camera import Camera
    from ovseg_core.render import Renderer
    from ovseg_core.scene import GaussianScene


def relevancy_image(
    renderer: Renderer,
    scene: GaussianScene,
    camera: Camera,
    relevancy: np.ndarray,
    selected: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """uint8 ``[H, W, 3]``: the view with the answer's pixels (those whose most-weighted Gaussian is
    ``selected`` ``[N]``) painted by ``relevancy`` ``[N]``."""
    from ovseg_core.render import frames
    from ovseg_core.render.pixel_answer import from_shown, shown_gaussians

    out = renderer.render(scene, camera, top_k=1)
    layers = frames.FrameLayers(rgb=out.rgb[0].clamp(0, 1).cpu().numpy(), alpha=out.alpha[0, ..., 0].cpu().numpy())
    pixels = from_shown(shown_gaussians(out), relevancy, selected, threshold)
    layers.relevancy, layers.answer = pixels.relevancy, pixels.answer
    return frames.compose("relevancy", layers, threshold=threshold)
