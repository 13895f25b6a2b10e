"""ovseg core library: scenes, cameras, file formats and renderers (no GUI).

Names load on first use (importing ``ovseg_core`` does not import torch)."""

from __future__ import annotations

from ovseg_core._lazy import lazy_exports

_EXPORTS = {
    "BackendUnavailableError": "ovseg_core.errors",
    "Camera": "ovseg_core.camera",
    "GaussianScene": "ovseg_core.scene",
    "ModelLoadError": "ovseg_core.errors",
    "OvsegError": "ovseg_core.errors",
    "RenderOutput": "ovseg_core.render",
    "RenderSettings": "ovseg_core.render",
    "SceneFormatError": "ovseg_core.errors",
    "load_scene": "ovseg_core.io",
    "make_renderer": "ovseg_core.render",
    "make_scene": "ovseg_core.scene",
    "open_fields": "ovseg_core.fields.discovery",
    "orbit_cameras": "ovseg_core.camera",
    "save_scene": "ovseg_core.io",
    "segment": "ovseg_core.segmentation",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
