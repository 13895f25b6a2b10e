"""A renderer that serialises its own use: the viewer's render loops, clicks and background jobs
(training, lifting, instance building) share one device, and each render takes the lock only for
as long as it runs, so a long job never stops the tabs from getting frames."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch

from ovseg_core.camera import Camera
from ovseg_core.render import Pick, Renderer, RenderOutput, RenderSettings
from ovseg_core.scene import GaussianScene


class LockedRenderer:
    """Wraps ``inner`` (any ``Renderer``); ``render`` and ``pick`` hold ``lock`` while they run."""

    def __init__(self, inner: Renderer, lock: threading.RLock | None = None) -> None:
        if isinstance(inner, LockedRenderer):  # never nest: one lock per device
            lock, inner = lock or inner.lock, inner.inner
        self.inner = inner
        self.lock = lock or threading.RLock()

    def __getattr__(self, attr: str):  # noqa: ANN204
        """Anything else a backend offers (read-only helpers) comes from the wrapped renderer."""
        if attr in ("inner", "lock"):  # not set yet (copy/pickle): no recursion into __getattr__
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def settings(self) -> RenderSettings:
        return self.inner.settings

    def render(
        self,
        scene: GaussianScene,
        cameras: Camera | Sequence[Camera],
        *,
        features: torch.Tensor | None = None,
        top_k: int = 0,
    ) -> RenderOutput:
        with self.lock:
            return self.inner.render(scene, cameras, features=features, top_k=top_k)

    def pick(self, scene: GaussianScene, camera: Camera, pixel: tuple[float, float], k: int = 8) -> Pick:
        with self.lock:
            return self.inner.pick(scene, camera, pixel, k=k)
