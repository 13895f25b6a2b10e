"""Which way is up in a splat, and where its bulk is: the first view of a scene.

Captures trained from COLMAP (INRIA 3DGS PLY, ``.splat``, SuperSplat/PlayCanvas files) keep
COLMAP's world frame, whose y axis points down (the first camera's image y); scenes made here and
in z-up tools use +z. ``detect_up`` decides from, in order: the capture's cameras (their mean
"up"), the splat's shape (its thinnest principal axis, when that axis is clearly thinnest and lies
along a world axis) and the file convention; the sign along the axis comes from where the mass is
(a ground or floor is dense, what stands on it thins out upwards) when the shape says so clearly.
``frame_view`` frames the robust bulk (percentiles of the opaque Gaussians), so far floaters do
not shrink the scene to a blob.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ovseg_core.camera import Camera
from ovseg_core.scene import GaussianScene

AXES: dict[str, tuple[float, float, float]] = {
    "+z": (0.0, 0.0, 1.0),
    "-y": (0.0, -1.0, 0.0),
    "+y": (0.0, 1.0, 0.0),
    "-z": (0.0, 0.0, -1.0),
    "+x": (1.0, 0.0, 0.0),
    "-x": (-1.0, 0.0, 0.0),
}
"""The up axes a viewer offers, by name."""
Y_DOWN = "-y"
"""Up in COLMAP's frame (INRIA/COLMAP/PlayCanvas files): the default when the shape is unclear."""
THIN_RATIO = 0.6
"""The thinnest principal axis counts as "up" when its variance is below this share of the next."""
ALIGNED = 0.9
"""... and when it is within ~25 degrees of a world axis."""
CLEAR_SKEW = 0.15
"""Mass asymmetry ((mean - median) / std) that decides the sign against the convention."""
BULK_PERCENTILES = (5.0, 95.0)
"""Per-axis percentiles of the opaque Gaussians that bound the framed bulk."""


@dataclasses.dataclass(frozen=True)
class UpGuess:
    """A detected up axis and what it came from."""

    axis: str
    """A key of ``AXES``."""
    source: str
    """"cameras", "geometry" or "convention"."""

    @property
    def vector(self) -> np.ndarray:
        return np.asarray(AXES[self.axis])


@dataclasses.dataclass(frozen=True)
class Framing:
    """Where a camera stands to see the bulk of a scene."""

    position: np.ndarray
    """``[3]`` camera centre."""
    look_at: np.ndarray
    """``[3]`` the bulk's centre."""
    up: np.ndarray
    """``[3]`` unit up direction."""
    radius: float
    """Half the diagonal of the bulk's box."""


def snap_axis(vector: Sequence[float]) -> str:
    """The name of the world axis nearest to ``vector`` ``[3]``."""
    v = np.asarray(vector, np.float64)
    return max(AXES, key=lambda name: float(np.dot(AXES[name], v)))


def up_from_cameras(cameras: Sequence[Camera]) -> np.ndarray | None:
    """The mean world "up" of OpenCV cameras (minus their image y axis), ``[3]`` unit, or None
    when there are none or they disagree too much to average."""
    ups = [-np.asarray(c.w2c, np.float64)[1, :3] for c in cameras]
    if not ups:
        return None
    mean = np.mean([u / max(np.linalg.norm(u), 1e-12) for u in ups], axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0.3 else None


def detect_up(
    means: np.ndarray,
    *,
    opacities: np.ndarray | None = None,
    cameras: Sequence[Camera] = (),
    convention: str = Y_DOWN,
) -> UpGuess:
    """The up axis of a scene with centres ``means`` ``[N, 3]`` (opacities ``[N]`` drop faint
    floaters from the statistics), from its ``cameras`` when they agree, else from its shape,
    else ``convention``."""
    if convention not in AXES:
        raise ValueError(f"convention must be one of {sorted(AXES)}, got {convention!r}")
    from_cameras = up_from_cameras(cameras)
    if from_cameras is not None:
        return UpGuess(snap_axis(from_cameras), "cameras")
    bulk = _bulk(means, opacities)
    if len(bulk) < 16:
        return UpGuess(convention, "convention")
    centred = bulk - bulk.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred / len(bulk))
    thin = vectors[:, 0]
    axis = int(np.argmax(np.abs(thin)))
    source = "geometry"
    if not (values[0] < THIN_RATIO * values[1] and abs(thin[axis]) > ALIGNED):
        axis, source = int(np.argmax(np.abs(AXES[convention]))), "convention"
    sign = _mass_sign(bulk[:, axis])
    if sign == 0:  # the shape does not say: the convention's sign for this axis (+ for x and z)
        sign = int(np.sign(AXES[convention][axis])) or (-1 if axis == 1 else 1)
    else:
        source = "geometry"
    return UpGuess(("+" if sign > 0 else "-") + "xyz"[axis], source)


def frame_view(
    means: np.ndarray,
    up: Sequence[float],
    *,
    opacities: np.ndarray | None = None,
    fov_y_deg: float = 60.0,
    aspect: float = 1.0,
    elevation_deg: float = 30.0,
    cameras: Sequence[Camera] = (),
) -> Framing:
    """A camera pose that frames the robust bulk of ``means`` ``[N, 3]`` with ``up`` at the top:
    from the side the capture's cameras looked from (when given; else the convention's: COLMAP
    cameras look along +z, z-up scenes are seen along +y), ``elevation_deg`` above the horizon."""
    up_v = np.asarray(up, np.float64)
    up_v = up_v / max(np.linalg.norm(up_v), 1e-12)
    bulk = _bulk(means, opacities)
    if len(bulk) == 0:
        center, radius = np.zeros(3), 1.0
    else:
        lo, hi = np.percentile(bulk, BULK_PERCENTILES, axis=0)
        center, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2 or 1.0
    forward = _horizontal(_view_direction(cameras, up_v), up_v)
    elev = math.radians(elevation_deg)
    fov_y_deg = fov_y_deg if math.isfinite(fov_y_deg) else 60.0
    aspect = min(max(aspect, 0.1), 10.0) if math.isfinite(aspect) else 1.0
    half_fov = math.radians(min(max(fov_y_deg, 10.0), 120.0)) / 2
    half_fov = min(half_fov, math.atan(math.tan(half_fov) * aspect))  # the narrower side
    distance = 1.05 * radius / math.sin(half_fov)
    position = center + distance * (-math.cos(elev) * forward + math.sin(elev) * up_v)
    return Framing(position, center, up_v, radius)


def default_orbit(
    scene: GaussianScene,
    num_frames: int,
    *,
    up: Sequence[float] | None = None,
    radius_scale: float = 1.2,
    elevation_deg: float = 25.0,
    width: int = 512,
    height: int = 384,
    fov_y_deg: float = 50.0,
) -> list[Camera]:
    """``ovseg-render``'s cameras when none are given: an orbit around the scene's bulk at
    ``radius_scale`` times the bulk's diagonal, ``up`` (default: detected) up, starting where
    ``frame_view`` stands."""
    means = scene.means.detach().cpu().numpy()
    opacities = scene.opacities.detach().cpu().numpy()
    up_v = np.asarray(up if up is not None else detect_up(means, opacities=opacities).vector, np.float64)
    if not np.isfinite(up_v).all() or np.linalg.norm(up_v) == 0:
        raise ValueError(f"up must be a non-zero direction, got {tuple(up_v)}")
    view = frame_view(means, up_v, opacities=opacities, fov_y_deg=fov_y_deg, aspect=width / height)
    radius = max(radius_scale * 2 * view.radius, 1e-3)
    start = _horizontal(view.position - view.look_at, view.up)
    side = np.cross(view.up, start)
    elev = math.radians(elevation_deg)
    cams = []
    for i in range(num_frames):
        phi = 2 * math.pi * i / num_frames
        around = math.cos(phi) * start + math.sin(phi) * side
        position = view.look_at + radius * (math.cos(elev) * around + math.sin(elev) * view.up)
        cams.append(Camera.look_at(position, view.look_at, view.up, width=width, height=height, fov_y_deg=fov_y_deg))
    return cams


def rotation_to(up_from: Sequence[float], up_to: Sequence[float]) -> np.ndarray:
    """The ``[3, 3]`` rotation taking unit direction ``up_from`` onto ``up_to`` (Rodrigues)."""
    a = np.asarray(up_from, np.float64) / np.linalg.norm(up_from)
    b = np.asarray(up_to, np.float64) / np.linalg.norm(up_to)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: half a turn about any perpendicular axis
        p = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        p /= np.linalg.norm(p)
        return 2 * np.outer(p, p) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def rotate_scene(scene: GaussianScene, rotation: np.ndarray) -> GaussianScene:
    """``scene`` turned by ``rotation`` ``[3, 3]`` about the origin (centres and orientations; the
    higher SH bands stay as they are, so only view-dependent tints are off): e.g. a z-up scene
    into COLMAP's y-down convention with ``rotation_to((0, 0, 1), (0, -1, 0))``."""
    import dataclasses as dc

    import torch
    from scipy.spatial.transform import Rotation

    rot = np.asarray(rotation, np.float64)
    quats = scene.quats.detach().cpu().numpy().astype(np.float64)
    turned = (Rotation.from_matrix(rot) * Rotation.from_quat(quats[:, [1, 2, 3, 0]])).as_quat()[:, [3, 0, 1, 2]]
    means = scene.means.detach().cpu().numpy().astype(np.float64) @ rot.T
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=scene.device)  # noqa: E731
    return dc.replace(scene, means=as_tensor(means), quats=as_tensor(turned), extras=dict(scene.extras))


def _bulk(means: np.ndarray, opacities: np.ndarray | None) -> np.ndarray:
    """The finite centres ``[M, 3]`` (float64) of the Gaussians that are not faint (when at least
    half are opaque), inside the 1st-99th percentile box: no floaters, no NaN."""
    m = np.asarray(means, np.float64).reshape(-1, 3)
    keep = np.isfinite(m).all(1)
    if opacities is not None:
        opaque = keep & (np.asarray(opacities, np.float64).reshape(-1) > 0.1)
        keep = opaque if opaque.sum() >= 0.5 * keep.sum() else keep
    m = m[keep]
    if len(m) == 0:
        return m
    lo, hi = np.percentile(m, (1.0, 99.0), axis=0)
    return m[((m >= lo) & (m <= hi)).all(1)]


def _mass_sign(heights: np.ndarray) -> int:
    """+1 / -1 when the mass along an axis clearly sits low / high (a ground below what stands
    on it: the mean above the median and a long upper tail), else 0."""
    std = float(heights.std())
    if std == 0:
        return 0
    pearson = (float(heights.mean()) - float(np.median(heights))) / std
    skew = float(np.mean(((heights - heights.mean()) / std) ** 3))
    if abs(pearson) > CLEAR_SKEW and np.sign(pearson) == np.sign(skew):
        return int(np.sign(pearson))
    return 0


def _view_direction(cameras: Sequence[Camera], up: np.ndarray) -> np.ndarray:
    """Where to look: the cameras' mean viewing direction, else +z (COLMAP) for a y up axis and
    +y for the others."""
    if cameras:
        mean = np.mean([np.asarray(c.w2c, np.float64)[2, :3] for c in cameras], axis=0)
        if np.linalg.norm(_reject(mean, up)) > 0.2:
            return mean
    axis = int(np.argmax(np.abs(up)))
    return np.array([0.0, 0.0, 1.0]) if axis == 1 else np.array([0.0, 1.0, 0.0])


def _horizontal(direction: np.ndarray, up: np.ndarray) -> np.ndarray:
    """``direction`` with its ``up`` part removed, unit (any horizontal direction if none is left)."""
    h = _reject(direction, up)
    if np.linalg.norm(h) < 1e-6:
        h = _reject(np.array([0.0, 1.0, 0.0]) if abs(up[1]) < 0.9 else np.array([0.0, 0.0, 1.0]), up)
    return h / np.linalg.norm(h)


def _reject(v: np.ndarray, up: np.ndarray) -> np.ndarray:
    return np.asarray(v, np.float64) - float(np.dot(v, up)) * up
