"""Keyframed camera paths, interpolated as nerfstudio's and nerfview's viewers do.

Positions, orientations (unit quaternions) and fields of view each follow a Kochanek-Bartels spline
(tension from the path, continuity and bias 0; tension 0 is Catmull-Rom) through the keyframes, so
keyframes around an object give an orbit, not a polygon. Time maps to the spline's parameter through
a monotone PCHIP curve over the keyframes' transition times, so a segment may last longer than
another. A loop closes the path (``closed`` end conditions) back to the first keyframe.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ovseg_core.camera import Camera, intrinsics, quat_to_rotmat
from ovseg_core.errors import UsageError

DEFAULT_FOV_DEG = 50.0
DEFAULT_TRANSITION_S = 2.0
"""nerfview's and nerfstudio's defaults: seconds from one keyframe to the next."""
MAX_KEYFRAMES = 100


@dataclasses.dataclass(frozen=True)
class Keyframe:
    """One keyframe: a camera pose, and optionally its own field of view and transition time."""

    position: tuple[float, float, float]
    """Camera centre in world space."""
    wxyz: tuple[float, float, float, float]
    """Camera-to-world rotation as a unit quaternion (w, x, y, z), OpenCV camera axes (viser's convention)."""
    fov_deg: float | None = None
    """Vertical field of view here in degrees; None: the path's ``default_fov_deg``."""
    transition_s: float | None = None
    """Seconds from the previous keyframe to this one (for the first keyframe of a loop: from the last
    one); None: the path's ``default_transition_s``."""

    def __post_init__(self) -> None:
        pos = np.asarray(self.position, np.float64)
        q = np.asarray(self.wxyz, np.float64)
        if pos.shape != (3,) or q.shape != (4,):
            raise UsageError(f"a keyframe needs a position [3] and a wxyz [4], got {pos.shape} and {q.shape}")
        if not (np.isfinite(pos).all() and np.isfinite(q).all()):
            raise UsageError("a keyframe's position and rotation must be finite numbers")
        norm = float(np.linalg.norm(q))
        if norm < 1e-6:
            raise UsageError("a keyframe's rotation quaternion is zero")
        check_fov_deg("keyframe fov", self.fov_deg)
        check_transition("keyframe transition", self.transition_s)
        object.__setattr__(self, "position", tuple(float(v) for v in pos))
        object.__setattr__(self, "wxyz", tuple(float(v) for v in q / norm))

    @staticmethod
    def from_camera(camera: Camera, *, with_fov: bool = True, transition_s: float | None = None) -> Keyframe:
        """The pose (and, with ``with_fov``, the vertical field of view) of ``camera``."""
        c2w = camera.c2w
        fov = math.degrees(camera.fov_y) if with_fov else None
        return Keyframe(tuple(c2w[:3, 3]), tuple(rotmat_to_wxyz(c2w[:3, :3])), fov, transition_s)

    @staticmethod
    def from_c2w(c2w: np.ndarray, fov_deg: float | None = None, transition_s: float | None = None) -> Keyframe:
        """From an OpenCV camera-to-world ``[4, 4]`` (its rotation must be orthonormal)."""
        c2w = np.asarray(c2w, np.float64)
        return Keyframe(tuple(c2w[:3, 3]), tuple(rotmat_to_wxyz(c2w[:3, :3])), fov_deg, transition_s)

    def c2w(self) -> np.ndarray:
        """OpenCV camera-to-world ``[4, 4]``."""
        m = np.eye(4)
        m[:3, :3] = quat_to_rotmat(np.asarray(self.wxyz))
        m[:3, 3] = self.position
        return m


@dataclasses.dataclass(frozen=True)
class CameraPath:
    """Keyframes and how to play them (nerfstudio's camera-path settings)."""

    keyframes: tuple[Keyframe, ...]
    default_fov_deg: float = DEFAULT_FOV_DEG
    """Vertical field of view of keyframes without their own, degrees."""
    default_transition_s: float = DEFAULT_TRANSITION_S
    """Seconds between keyframes without their own transition time."""
    loop: bool = False
    """Go on from the last keyframe back to the first (nerfstudio's ``is_cycle``)."""
    tension: float = 0.0
    """Spline tension in [0, 1] (nerfstudio's ``smoothness_value``): 0 is Catmull-Rom, 1 stops at each keyframe."""
    fps: float = 30.0
    width: int = 640
    height: int = 360
    """Video size in pixels."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyframes", tuple(self.keyframes))
        if len(self.keyframes) > MAX_KEYFRAMES:
            raise UsageError(f"a camera path has at most {MAX_KEYFRAMES} keyframes, got {len(self.keyframes)}")
        check_fov_deg("default fov", self.default_fov_deg)
        check_transition("default transition", self.default_transition_s)
        if not (math.isfinite(self.tension) and 0.0 <= self.tension <= 1.0):
            raise UsageError(f"spline tension must lie in [0, 1], got {self.tension}")
        if not (math.isfinite(self.fps) and 0 < self.fps <= 240):
            raise UsageError(f"fps must lie in (0, 240], got {self.fps}")
        if int(self.width) < 1 or int(self.height) < 1:
            raise UsageError(f"a video size must be positive, got {self.width}x{self.height}")

    # -- time ------------------------------------------------------------------------------------
    def _transition(self, k: Keyframe) -> float:
        return self.default_transition_s if k.transition_s is None else k.transition_s

    def transition_times(self) -> np.ndarray:
        """Seconds at which the path reaches each keyframe ``[K]`` (``[K + 1]`` for a loop: the last is
        the return to the first)."""
        keys = self.keyframes
        times = [0.0, *np.cumsum([self._transition(k) for k in keys[1:]])]
        if self.loop and keys:
            times.append(times[-1] + self._transition(keys[0]))
        return np.asarray(times, np.float64)

    def duration(self) -> float:
        """Seconds from the first keyframe to the last (back to the first for a loop)."""
        return float(self.transition_times()[-1]) if len(self.keyframes) >= 2 else 0.0

    def frame_count(self) -> int:
        """Frames of a video of the path: ``fps * duration``, rounded down (as nerfstudio)."""
        return int(math.floor(self.fps * self.duration() + 1e-6))

    def frame_positions(self, frames: int | None = None) -> np.ndarray:
        """Where along the path (0 = start, 1 = end) each of ``frames`` frames is ``[T]``: from the
        first keyframe to the last, or for a loop up to one frame before coming back."""
        n = self.frame_count() if frames is None else int(frames)
        if n < 1:
            raise UsageError(f"a camera path video needs at least one frame, got {n}")
        if self.loop:
            return np.arange(n) / n
        return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)

    # -- poses -----------------------------------------------------------------------------------
    def _splines(self):  # noqa: ANN202
        import splines
        import splines.quaternion

        if len(self.keyframes) < 2:
            raise UsageError(f"a camera path needs at least 2 keyframes, got {len(self.keyframes)}")
        kw = dict(tcb=(self.tension, 0.0, 0.0), endconditions="closed" if self.loop else "natural")
        keys = self.keyframes
        quats = [splines.quaternion.UnitQuaternion.from_unit_xyzw(np.roll(k.wxyz, -1)) for k in keys]
        fovs = [self.default_fov_deg if k.fov_deg is None else k.fov_deg for k in keys]
        return (
            splines.KochanekBartels([k.position for k in keys], **kw),
            splines.quaternion.KochanekBartels(quats, **kw),
            splines.KochanekBartels(fovs, **kw),
        )

    def spline_parameter(self, seconds: np.ndarray) -> np.ndarray:
        """Spline parameter (keyframe index, fractional) at ``seconds`` ``[T]``: a PCHIP curve through
        (transition time, index) keeps it monotone while segments last different times."""
        from scipy.interpolate import PchipInterpolator

        times = self.transition_times()
        index = np.arange(len(times), dtype=np.float64)
        if self.loop:  # pad one segment either side so the slopes at the ends match across the seam
            x = np.concatenate([[-(times[-1] - times[-2])], times, times[-1:] + times[1:2]])
            y = np.concatenate([[-1.0], index, [index[-1] + 1]])
        else:
            x, y = times, index
        return np.clip(PchipInterpolator(x, y)(np.asarray(seconds, np.float64)), 0, index[-1])

    def sample(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """OpenCV camera-to-world ``[T, 4, 4]`` and vertical field of view in degrees ``[T]`` at
        ``positions`` ``[T]`` along the path (0 = start, 1 = end, as ``frame_positions``)."""
        position_spline, rotation_spline, fov_spline = self._splines()
        u = np.clip(np.asarray(positions, np.float64).reshape(-1), 0.0, 1.0)
        t = self.spline_parameter(u * self.duration())
        c2w = np.tile(np.eye(4), (len(t), 1, 1))
        c2w[:, :3, 3] = np.asarray(position_spline.evaluate(t), np.float64).reshape(len(t), 3)
        for i, ti in enumerate(t):
            q = rotation_spline.evaluate(float(ti))
            c2w[i, :3, :3] = quat_to_rotmat(np.array([q.scalar, *q.vector]))
        fov = np.asarray(fov_spline.evaluate(t), np.float64).reshape(len(t))
        return c2w, np.clip(fov, MIN_FOV_DEG, MAX_FOV_DEG)

    def cameras(self, frames: int | None = None) -> list[Camera]:
        """The video's cameras at ``width`` x ``height`` (``frames`` of them; default ``frame_count()``)."""
        c2w, fov = self.sample(self.frame_positions(frames))
        return cameras_from(c2w, fov, int(self.width), int(self.height))


MIN_FOV_DEG, MAX_FOV_DEG = 0.1, 175.0
"""nerfstudio's FOV slider range; a spline overshooting it is clamped."""


def cameras_from(c2w: np.ndarray, fov_deg: np.ndarray, width: int, height: int) -> list[Camera]:
    """Pinhole cameras from OpenCV camera-to-world ``[T, 4, 4]`` and vertical FOVs ``[T]`` (degrees),
    centred principal point, square pixels (nerfstudio's ``get_path_from_json``)."""
    cams = []
    for m, fov in zip(c2w, fov_deg, strict=True):
        f = 0.5 * height / math.tan(math.radians(float(fov)) / 2)
        cams.append(Camera.from_c2w(m, intrinsics(f, f, width / 2.0, height / 2.0), width, height))
    return cams


def check_fov_deg(what: str, fov: float | None) -> None:
    if fov is not None and not (math.isfinite(fov) and MIN_FOV_DEG <= fov <= MAX_FOV_DEG):
        raise UsageError(f"{what} must lie in [{MIN_FOV_DEG}, {MAX_FOV_DEG}] degrees, got {fov}")


def check_transition(what: str, seconds: float | None) -> None:
    if seconds is not None and not (math.isfinite(seconds) and 0.001 <= seconds <= 3600):
        raise UsageError(f"{what} must lie in [0.001, 3600] seconds, got {seconds}")


def rotmat_to_wxyz(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) ``[4]`` of a rotation matrix ``[3, 3]``, w >= 0."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.asarray(R, np.float64)).as_quat()
    q = np.array([w, x, y, z])
    return q if w >= 0 else -q
