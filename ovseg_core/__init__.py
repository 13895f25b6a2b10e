"""ovseg core library: scenes, cameras, file formats and renderers (no GUI)."""

from ovseg_core.camera import Camera, orbit_cameras
from ovseg_core.errors import BackendUnavailableError, ModelLoadError, SceneFormatError
from ovseg_core.io import load_scene, save_scene
from ovseg_core.render import RenderOutput, RenderSettings, make_renderer
from ovseg_core.scene import GaussianScene, make_scene

__all__ = [
    "BackendUnavailableError",
    "Camera",
    "GaussianScene",
    "ModelLoadError",
    "RenderOutput",
    "RenderSettings",
    "SceneFormatError",
    "load_scene",
    "make_renderer",
    "make_scene",
    "orbit_cameras",
    "save_scene",
]
