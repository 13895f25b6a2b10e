"""Pinhole cameras in the OpenCV convention: x right, y down, z forward.

A camera is a world-to-camera matrix ``w2c`` [4, 4], pixel intrinsics ``K`` [3, 3] and an
image size. Conversions from the other conventions ovseg meets (viser's client camera,
NeRF/OpenGL camera-to-world) live here; dataset readers are in ``ovseg_core.io.cameras``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ovseg_core.errors import SceneFormatError, UsageError

_OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclasses.dataclass(frozen=True, eq=False)
class Camera:
    """One pinhole camera."""

    w2c: np.ndarray
    """World-to-camera rigid transform, ``[4, 4]`` float64, OpenCV axes."""
    K: np.ndarray
    """Pixel intrinsics ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``, ``[3, 3]`` float64; pixel centres at +0.5."""
    width: int
    height: int

    def __post_init__(self) -> None:
        w2c = np.asarray(self.w2c, dtype=np.float64)
        K = np.asarray(self.K, dtype=np.float64)
        if w2c.shape != (4, 4):
            raise ValueError(f"camera w2c must be [4, 4], got {list(w2c.shape)}")
        if K.shape != (3, 3):
            raise ValueError(f"camera K must be [3, 3], got {list(K.shape)}")
        if not (np.isfinite(w2c).all() and np.isfinite(K).all()):
            raise ValueError("camera w2c and K must be finite")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"camera focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "w2c", w2c)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Camera):
            return NotImplemented
        return (
            self.width == other.width
            and self.height == other.height
            and np.array_equal(self.w2c, other.w2c)
            and np.array_equal(self.K, other.K)
        )

    def __hash__(self) -> int:
        return hash((self.width, self.height, self.w2c.tobytes(), self.K.tobytes()))

    @property
    def c2w(self) -> np.ndarray:
        """Camera-to-world, ``[4, 4]``."""
        return invert_rigid(self.w2c)

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world space, ``[3]``."""
        return self.c2w[:3, 3]

    @property
    def fov_y(self) -> float:
        """Vertical field of view in radians."""
        return 2.0 * math.atan(0.5 * self.height / self.K[1, 1])

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``[N, 3]`` -> pixel coordinates ``[N, 2]`` (x, y, in ``K``'s pixel frame) and
        camera-space depths ``[N]``, in the points' float precision. Points at or behind the camera
        plane get non-finite or meaningless pixels: test ``depth > 0`` (or a near plane) first."""
        points = np.asarray(points)
        dtype = points.dtype if points.dtype in (np.float32, np.float64) else np.float64
        R = self.w2c[:3, :3].astype(dtype)
        t = self.w2c[:3, 3].astype(dtype)
        cam = points.astype(dtype, copy=False) @ R.T + t
        depth = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = cam @ self.K.astype(dtype).T
            pixels = uv[:, :2] / depth[:, None]
        return pixels, depth

    def resized(self, width: int, height: int) -> Camera:
        """The same view at another resolution (intrinsics scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0] *= sx
        K[1] *= sy
        return Camera(self.w2c, K, width, height)

    def downsampled(self, factor: float) -> Camera:
        """The view at ``1/factor`` resolution (rounded), as image downsampling does."""
        if factor <= 0:
            raise ValueError(f"downsample factor must be positive, got {factor}")
        return self.resized(max(1, round(self.width / factor)), max(1, round(self.height / factor)))

    def to_dict(self) -> dict[str, Any]:
        return {"w2c": self.w2c.tolist(), "K": self.K.tolist(), "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Camera:
        missing = [k for k in ("w2c", "K", "width", "height") if k not in data]
        if missing:
            raise SceneFormatError(f"camera JSON is missing {missing}; expected keys w2c [4x4], K [3x3], width, height")
        for key in ("width", "height"):
            if isinstance(data[key], bool) or not isinstance(data[key], (int, float)) or data[key] != int(data[key]):
                raise ValueError(f"camera {key} must be a whole number, got {data[key]!r}")
        cam = cls(
            np.array(data["w2c"], dtype=np.float64),
            np.array(data["K"], dtype=np.float64),
            data["width"],
            data["height"],
        )
        check_pinhole(cam.w2c, cam.K)
        return cam

    @classmethod
    def from_c2w(cls, c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> Camera:
        return cls(invert_rigid(np.asarray(c2w, np.float64)), K, width, height)

    @classmethod
    def from_opengl_c2w(cls, c2w_gl: np.ndarray, K: np.ndarray, width: int, height: int) -> Camera:
        """From a NeRF/OpenGL camera-to-world (x right, y up, camera looks along -z), e.g. transforms.json."""
        c2w_gl = np.asarray(c2w_gl, dtype=np.float64)
        if c2w_gl.shape == (3, 4):
            c2w_gl = np.vstack([c2w_gl, [0, 0, 0, 1]])
        return cls.from_c2w(c2w_gl @ _OPENGL_TO_OPENCV, K, width, height)

    @classmethod
    def from_viser(
        cls,
        wxyz: Sequence[float],
        position: Sequence[float],
        fov_y: float,
        aspect: float,
        height: int,
    ) -> Camera:
        """From a viser client camera (OpenCV axes; ``wxyz`` rotates camera to world; vertical fov)."""
        if not 0 < fov_y < math.pi:
            raise UsageError(f"vertical field of view must be in (0, pi), got {fov_y}")
        c2w = np.eye(4)
        c2w[:3, :3] = quat_to_rotmat(np.asarray(wxyz, dtype=np.float64))
        c2w[:3, 3] = np.asarray(position, dtype=np.float64)
        width = max(1, round(height * aspect))
        fy = 0.5 * height / math.tan(0.5 * fov_y)
        K = intrinsics(fy, fy, width / 2.0, height / 2.0)
        return cls.from_c2w(c2w, K, width, height)

    @classmethod
    def look_at(
        cls,
        eye: Sequence[float],
        target: Sequence[float],
        up: Sequence[float] = (0.0, 0.0, 1.0),
        *,
        width: int = 512,
        height: int = 384,
        fov_y_deg: float = 50.0,
    ) -> Camera:
        """A camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image."""
        eye_v, target_v, up_v = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        forward = target_v - eye_v
        if np.linalg.norm(forward) == 0:
            raise ValueError("look_at: eye and target coincide")
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, up_v)
        if np.linalg.norm(right) < 1e-9:  # looking along up: pick any perpendicular
            right = np.cross(forward, np.array([1.0, 0.0, 0.0]) if abs(forward[0]) < 0.9 else np.array([0.0, 1.0, 0.0]))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        c2w = np.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye_v
        fy = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        return cls.from_c2w(c2w, intrinsics(fy, fy, width / 2.0, height / 2.0), width, height)


RIGID_TOLERANCE = 1e-4
"""How far a stored rotation may be from orthonormal (float32 round trips stay far below it)."""


def check_pinhole(w2c: np.ndarray, K: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``w2c`` ``[4, 4]`` is a rigid transform (a proper rotation, last row
    ``0 0 0 1``) and ``K`` ``[3, 3]`` a pinhole matrix (no skew, last row ``0 0 1``): a zero or scaled
    matrix would otherwise render a degenerate image instead of being refused. Sizes are checked by ``Camera``."""
    R = w2c[:3, :3]
    if not np.allclose(w2c[3], [0.0, 0.0, 0.0, 1.0], atol=0.0):
        raise ValueError(f"camera w2c's last row must be [0, 0, 0, 1], got {w2c[3].tolist()}")
    error, det = float(np.abs(R.T @ R - np.eye(3)).max()), float(np.linalg.det(R))
    if error > RIGID_TOLERANCE or det <= 0:
        raise ValueError(
            "camera w2c is not rigid: its 3x3 part must be a rotation (orthonormal, determinant +1); "
            f"R^T R deviates from the identity by {error:.3g}, the determinant is {det:.3g}"
        )
    if not np.array_equal(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0 or K[0, 1] != 0:
        raise ValueError(f"camera K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Pixel intrinsics ``K`` [3, 3]."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def invert_rigid(m: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (rotation + translation) ``[4, 4]`` transform."""
    out = np.eye(4)
    r = m[:3, :3]
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ m[:3, 3]
    return out


def quat_to_rotmat(wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[3, 3]`` from a (w, x, y, z) quaternion (normalised first)."""
    q = np.asarray(wxyz, dtype=np.float64)
    n = np.linalg.norm(q)
    if n == 0:
        raise UsageError("a zero quaternion has no rotation")
    w, x, y, z = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def orbit_cameras(
    center: Sequence[float],
    radius: float,
    num_frames: int,
    *,
    elevation_deg: float = 25.0,
    up: Sequence[float] = (0.0, 0.0, 1.0),
    width: int = 512,
    height: int = 384,
    fov_y_deg: float = 50.0,
) -> list[Camera]:
    """Cameras on a circle around ``center`` (in the plane normal to ``up``), looking at it."""
    if num_frames < 1:
        raise ValueError(f"orbit needs at least one frame, got {num_frames}")
    if radius <= 0:
        raise ValueError(f"orbit radius must be positive, got {radius}")
    up_v = np.asarray(up, dtype=np.float64)
    up_v /= np.linalg.norm(up_v)
    a = np.array([1.0, 0.0, 0.0]) if abs(up_v[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(up_v, a)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up_v, e1)
    c = np.asarray(center, dtype=np.float64)
    elev = math.radians(elevation_deg)
    cams = []
    for i in range(num_frames):
        phi = 2 * math.pi * i / num_frames
        offset = radius * (math.cos(elev) * (math.cos(phi) * e1 + math.sin(phi) * e2) + math.sin(elev) * up_v)
        cams.append(Camera.look_at(c + offset, c, up_v, width=width, height=height, fov_y_deg=fov_y_deg))
    return cams


def load_camera_json(text: str, source: str = "<json>") -> list[Camera]:
    """Cameras from JSON: one ``{"w2c", "K", "width", "height"}`` object or a list of them."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SceneFormatError(f"{source}: not valid JSON: {e}") from e
    items = data if isinstance(data, list) else [data]
    if not items:
        raise SceneFormatError(f"{source}: the camera list is empty")
    cameras = []
    for i, item in enumerate(items):
        where = f"{source}: camera {i}" if isinstance(data, list) else source
        if not isinstance(item, dict):
            raise SceneFormatError(f"{where}: expected an object with w2c, K, width, height")
        try:
            cameras.append(Camera.from_dict(item))
        except SceneFormatError as e:
            raise SceneFormatError(f"{where}: {e}") from e
        except (ValueError, TypeError, OverflowError) as e:
            raise SceneFormatError(f"{where}: {e}") from e
    return cameras
