"""nerfstudio's ``camera_path.json``, as its viewer, ``ns-render camera-path`` and nerfview write it.

The file holds the keyframes (``matrix``: OpenGL camera-to-world, row-major, flattened; ``fov``
vertical in degrees; ``aspect``; transition overrides) and the sampled path (``camera_path``: one
``camera_to_world`` + ``fov`` + ``aspect`` per frame), with ``render_width``/``render_height``,
``fps``, ``seconds``, ``is_cycle``, ``smoothness_value``, ``default_fov`` and
``default_transition_sec``. Renderers use the sampled frames; viewers rebuild the keyframes.

Positions are in the file's own world frame. nerfview's viewer divides them by its ``scale_ratio``
(10 by default) when it saves: read such a file with ``position_scale=10``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

from ovseg_core.camera import Camera
from ovseg_core.camera_path.spline import (
    DEFAULT_FOV_DEG,
    DEFAULT_TRANSITION_S,
    MAX_FOV_DEG,
    MIN_FOV_DEG,
    CameraPath,
    Keyframe,
    cameras_from,
)
from ovseg_core.errors import UsageError

OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplying a camera-to-world swaps OpenCV (y down, z forward) and OpenGL (y up, z back) axes."""
ROTATION_TOLERANCE = 1e-3
"""How far a file's rotation may be from orthonormal (printed decimals); it is re-orthonormalised."""
MAX_SIDE, MAX_PIXELS = 16384, 7680 * 4320
MAX_FRAMES = 3000


@dataclasses.dataclass(frozen=True, eq=False)
class NerfstudioCameraPath:
    """What a ``camera_path.json`` holds: the sampled frames, and the keyframes when it has them."""

    c2w: np.ndarray
    """OpenCV camera-to-world per frame ``[T, 4, 4]``."""
    fov_deg: np.ndarray
    """Vertical field of view per frame, degrees ``[T]``."""
    width: int
    height: int
    fps: float
    seconds: float
    path: CameraPath | None = None
    """The keyframes and settings (None when the file has fewer than 2 keyframes, or they were not read)."""

    def cameras(self, downsample: float = 1.0) -> list[Camera]:
        """One camera per frame, at the file's size divided by ``downsample``."""
        w, h = max(1, round(self.width / downsample)), max(1, round(self.height / downsample))
        return cameras_from(self.c2w, self.fov_deg, w, h)


def camera_path_json(path: CameraPath, position_scale: float = 1.0) -> dict[str, Any]:
    """``path`` as a nerfstudio ``camera_path.json`` object (keyframes and the sampled frames);
    positions are divided by ``position_scale``."""
    n = path.frame_count()
    c2w, fov = path.sample(path.frame_positions(n)) if n >= 1 else (np.zeros((0, 4, 4)), np.zeros(0))
    aspect = path.width / path.height

    def gl(m: np.ndarray) -> list[float]:
        out = m @ OPENGL_FROM_OPENCV
        out[:3, 3] /= position_scale
        return [float(v) for v in out.reshape(-1)]

    keyframes = [
        {
            "matrix": gl(k.c2w()),
            "fov": float(path.default_fov_deg if k.fov_deg is None else k.fov_deg),
            "aspect": aspect,
            "override_transition_enabled": k.transition_s is not None,
            "override_transition_sec": k.transition_s,
        }
        for k in path.keyframes
    ]
    return {
        "default_fov": float(path.default_fov_deg),
        "default_transition_sec": float(path.default_transition_s),
        "keyframes": keyframes,
        "camera_type": "perspective",
        "render_height": int(path.height),
        "render_width": int(path.width),
        "fps": float(path.fps),
        "seconds": path.duration(),
        "is_cycle": bool(path.loop),
        "smoothness_value": float(path.tension),
        "camera_path": [{"camera_to_world": gl(m), "fov": float(f), "aspect": aspect} for m, f in zip(c2w, fov)],
    }


def dumps_camera_path(path: CameraPath, position_scale: float = 1.0) -> bytes:
    return json.dumps(camera_path_json(path, position_scale), indent=2).encode()


def read_camera_path(
    text: str | bytes, source: str = "<camera path>", *, keyframes: bool = True, position_scale: float = 1.0
) -> NerfstudioCameraPath:
    """Parse a ``camera_path.json`` (``source`` names it in errors). ``keyframes``: also rebuild the
    keyframes (a renderer needs only the frames). Every problem is one ``UsageError`` naming the file
    and the key."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{source}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a JSON object (a nerfstudio camera_path.json), got {type(data).__name__}")
    r = _Reader(source, position_scale)
    camera_type = data.get("camera_type", "perspective")
    if camera_type != "perspective":
        raise UsageError(f"{source}: key 'camera_type': only 'perspective' paths can be rendered, got {camera_type!r}")
    width, height = r.integer(data, "render_width"), r.integer(data, "render_height")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise UsageError(f"{source}: keys 'render_width'/'render_height': {width}x{height} is too large")
    seconds = r.number(data, "seconds", lo=1e-3, hi=24 * 3600)
    frames = r.array(data, "camera_path")
    if not 1 <= len(frames) <= MAX_FRAMES:
        raise UsageError(f"{source}: key 'camera_path': {len(frames)} frames; 1 to {MAX_FRAMES} can be rendered")
    fps = r.number(data, "fps", lo=1e-3, hi=240) if "fps" in data else len(frames) / seconds
    c2w = np.stack(
        [r.pose(r.obj(f, f"camera_path[{i}]"), "camera_to_world", f"camera_path[{i}]") for i, f in enumerate(frames)]
    )
    fov = np.array([r.fov(f, "fov", f"camera_path[{i}]") for i, f in enumerate(frames)])
    path = r.keyframe_path(data, width, height, fps) if keyframes else None
    return NerfstudioCameraPath(c2w, fov, width, height, float(fps), seconds, path)


class _Reader:
    """Checked values out of the parsed JSON; errors name the file and the key."""

    def __init__(self, source: str, position_scale: float) -> None:
        if not (math.isfinite(position_scale) and position_scale > 0):
            raise UsageError(f"the camera path's position scale must be a positive number, got {position_scale}")
        self.source, self.scale = source, position_scale

    def fail(self, key: str, problem: str) -> UsageError:
        return UsageError(f"{self.source}: key '{key}': {problem}")

    def get(self, obj: dict, key: str, where: str = "") -> Any:
        name = f"{where}.{key}" if where else key
        if key not in obj:
            raise self.fail(name, "missing")
        return obj[key]

    def obj(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")
        return value

    def array(self, obj: dict, key: str) -> list:
        value = self.get(obj, key)
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {type(value).__name__}")
        return value

    def number(self, obj: dict, key: str, where: str = "", *, lo: float = -math.inf, hi: float = math.inf) -> float:
        name = f"{where}.{key}" if where else key
        value = self.get(obj, key, where)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(name, f"expected a finite number, got {value!r}"[:200])
        if not lo <= value <= hi:
            raise self.fail(name, f"{value} is outside [{lo:g}, {hi:g}]")
        return float(value)

    def integer(self, obj: dict, key: str) -> int:
        value = self.number(obj, key, lo=1)
        if value != int(value):
            raise self.fail(key, f"expected a whole number, got {value}")
        return int(value)

    def fov(self, obj: dict, key: str, where: str) -> float:
        return self.number(obj, key, where, lo=MIN_FOV_DEG, hi=MAX_FOV_DEG)

    def pose(self, obj: dict, key: str, where: str) -> np.ndarray:
        """An OpenGL camera-to-world (16 numbers, row-major; a string is the legacy web viewer's
        column-major three.js array) as an OpenCV camera-to-world ``[4, 4]``."""
        name = f"{where}.{key}"
        value = self.get(obj, key, where)
        column_major = isinstance(value, str)
        try:
            m = np.asarray(json.loads(value) if column_major else value, dtype=np.float64).reshape(-1)
        except (ValueError, TypeError, json.JSONDecodeError) as e:
            raise self.fail(name, f"expected 16 numbers (a 4x4 matrix): {e}"[:200]) from e
        if m.size != 16:
            raise self.fail(name, f"expected 16 numbers (a 4x4 matrix), got {m.size}")
        if not np.isfinite(m).all():
            raise self.fail(name, "has values that are not finite numbers")
        m = m.reshape(4, 4).T if column_major else m.reshape(4, 4)
        if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6):
            raise self.fail(name, f"the last row must be [0, 0, 0, 1], got {m[3].tolist()}")
        R = m[:3, :3]
        error, det = float(np.abs(R.T @ R - np.eye(3)).max()), float(np.linalg.det(R))
        if error > ROTATION_TOLERANCE or det <= 0:
            raise self.fail(name, f"not a rigid camera pose (rotation error {error:.3g}, determinant {det:.3g})")
        u, _, vt = np.linalg.svd(R)  # the nearest rotation: printed decimals are not exactly orthonormal
        m[:3, :3] = u @ vt
        m[:3, 3] *= self.scale
        return m @ OPENGL_FROM_OPENCV

    def keyframe_path(self, data: dict, width: int, height: int, fps: float) -> CameraPath | None:
        raw = data.get("keyframes") or []
        if not isinstance(raw, list):
            raise self.fail("keyframes", f"expected a list, got {type(raw).__name__}")
        default_fov = self.fov(data, "default_fov", "") if "default_fov" in data else DEFAULT_FOV_DEG
        default_s = (
            self.number(data, "default_transition_sec", lo=1e-3, hi=3600)
            if data.get("default_transition_sec") is not None
            else DEFAULT_TRANSITION_S
        )
        keys = []
        for i, k in enumerate(raw):
            where = f"keyframes[{i}]"
            k = self.obj(k, where)
            c2w = self.pose(k, "matrix", where)
            fov = self.fov(k, "fov", where) if "fov" in k else None
            if fov is not None and abs(fov - default_fov) <= 1e-3:
                fov = None  # as nerfview: a keyframe at the default FOV follows the default
            seconds = None
            if k.get("override_transition_enabled") and k.get("override_transition_sec") is not None:
                seconds = self.number(k, "override_transition_sec", where, lo=1e-3, hi=3600)
            keys.append(Keyframe.from_c2w(c2w, fov, seconds))
        if len(keys) < 2:
            return None
        loop = data.get("is_cycle", False)
        if not isinstance(loop, bool):
            raise self.fail("is_cycle", f"expected true or false, got {loop!r}"[:200])
        tension = self.number(data, "smoothness_value", lo=0, hi=1) if "smoothness_value" in data else 0.0
        try:
            return CameraPath(tuple(keys), default_fov, default_s, loop, tension, fps, width, height)
        except UsageError as e:
            raise UsageError(f"{self.source}: {e}") from e
