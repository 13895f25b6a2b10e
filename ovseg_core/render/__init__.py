"""Renderers behind one protocol; ``make_renderer('auto' | 'fvdb' | 'cpu' | 'torch')`` picks one."""

from ovseg_core.render.base import (
    BACKENDS,
    Pick,
    Renderer,
    RenderOutput,
    RenderSettings,
    fvdb_available,
    make_renderer,
)

__all__ = ["BACKENDS", "Pick", "RenderOutput", "RenderSettings", "Renderer", "fvdb_available", "make_renderer"]
