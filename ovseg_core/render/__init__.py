"""Renderers behind one protocol (``ovseg_core.render.types``), registered here by name.

``make_renderer('auto' | 'fvdb' | 'cpu' | 'torch')`` builds one. A new backend is one module (a class
with ``name``, ``settings``, ``render`` and ``pick``, built as ``cls(settings)`` or
``cls(settings, device=...)``) plus one line in ``BACKENDS``; the CLIs' ``--backend`` choices
(``BackendName``) follow. Backends are imported only when built, so naming one costs nothing.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ovseg_core.errors import UsageError
from ovseg_core.render.types import Pick, Renderer, RenderOutput, RenderSettings


@dataclasses.dataclass(frozen=True)
class Backend:
    """A registered renderer: where its class lives and when it can run."""

    target: str
    """``module:Class`` of the renderer, imported when it is built."""
    available: str | None = None
    """``module:function`` returning whether it can run here; None: always."""
    auto: bool = True
    """Whether ``auto`` may pick it (the first available auto backend in registration order wins)."""

    def renderer_class(self) -> Callable[..., Renderer]:
        """The renderer class (its module is imported now)."""
        return _resolve(self.target)

    def is_available(self) -> bool:
        return self.available is None or bool(_resolve(self.available)())


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


BACKENDS: dict[str, Backend] = {
    # fVDB's CUDA rasteriser (needs CUDA and fvdb-reality-capture)
    "fvdb": Backend("ovseg_core.render.fvdb_backend:FvdbRenderer", "ovseg_core.render.fvdb_backend:fvdb_available"),
    # the numba CPU rasteriser
    "cpu": Backend("ovseg_core.render.cpu:CpuRenderer"),
    # the plain-PyTorch reference (slow; the test oracle)
    "torch": Backend("ovseg_core.render.torch_ref:TorchRenderer", auto=False),
}

if TYPE_CHECKING:
    BackendName = str
else:
    BackendName = Literal[("auto", *BACKENDS)]
"""``--backend`` choices: ``auto`` or a registered backend's name."""


def fvdb_available() -> bool:
    """True when fvdb-reality-capture imports and CUDA is usable."""
    return BACKENDS["fvdb"].is_available()


def make_renderer(
    backend: BackendName | str = "auto",
    settings: RenderSettings | None = None,
    *,
    device: Any = None,
) -> Renderer:
    """Build a renderer; ``auto`` picks the first available backend that allows it (fvdb when
    fvdb-reality-capture and CUDA are present, else cpu). ``device`` goes to backends that take one."""
    settings = settings or RenderSettings()
    if backend == "auto":
        backend = next(name for name, b in BACKENDS.items() if b.auto and b.is_available())
    if backend not in BACKENDS:
        raise UsageError(f"unknown render backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    cls = BACKENDS[backend].renderer_class()
    return cls(settings) if device is None else cls(settings, device=device)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendName",
    "Pick",
    "RenderOutput",
    "RenderSettings",
    "Renderer",
    "fvdb_available",
    "make_renderer",
]
