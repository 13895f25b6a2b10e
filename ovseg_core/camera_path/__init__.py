"""Camera paths: keyframes interpolated by nerfstudio's splines (``spline.py``), and nerfstudio's
``camera_path.json`` (``nerfstudio.py``). No GUI: the viewer's panel and ``ovseg render
--camera-path`` build on these."""

from __future__ import annotations

from ovseg_core.camera_path.nerfstudio import (
    NerfstudioCameraPath,
    camera_path_json,
    dumps_camera_path,
    read_camera_path,
)
from ovseg_core.camera_path.spline import CameraPath, Keyframe, cameras_from

__all__ = [
    "CameraPath",
    "Keyframe",
    "NerfstudioCameraPath",
    "camera_path_json",
    "cameras_from",
    "dumps_camera_path",
    "read_camera_path",
]
