"""Camera paths: keyframes taken from a tab's camera, interpolated (positions linearly, rotations
by quaternion slerp, field of view linearly) at a constant frame count per segment, and written
as an MP4."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ovseg_app.cli_checks import MAX_VIDEO_FRAMES
from ovseg_core.camera import Camera
from ovseg_core.errors import UsageError
from ovseg_core.io.video import atomic_video

MAX_KEYFRAMES = 100


@dataclasses.dataclass(frozen=True)
class Keyframe:
    wxyz: tuple[float, float, float, float]
    """Camera-to-world rotation (viser's convention, OpenCV axes)."""
    position: tuple[float, float, float]
    fov_y: float
    """Vertical field of view in radians."""


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions ``[4]`` (the shorter way round)."""
    q0, q1 = q0 / np.linalg.norm(q0), q1 / np.linalg.norm(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear is exact enough and avoids dividing by sin(~0)
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(dot)
    return (math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / math.sin(theta)


def path_cameras(keyframes: list[Keyframe], frames: int, width: int, height: int) -> list[Camera]:
    """``frames`` cameras along the keyframes (the first and last frames are the end keyframes)."""
    if len(keyframes) < 2:
        raise UsageError(f"a camera path needs at least 2 keyframes, got {len(keyframes)}")
    if not 2 <= frames <= MAX_VIDEO_FRAMES:
        raise UsageError(f"a video has 2-{MAX_VIDEO_FRAMES} frames, got {frames}")
    segments = len(keyframes) - 1
    cams = []
    for i in range(frames):
        u = i / (frames - 1) * segments
        k = min(int(u), segments - 1)
        t = u - k
        a, b = keyframes[k], keyframes[k + 1]
        q = slerp(np.asarray(a.wxyz, float), np.asarray(b.wxyz, float), t)
        pos = (1 - t) * np.asarray(a.position, float) + t * np.asarray(b.position, float)
        fov = (1 - t) * a.fov_y + t * b.fov_y
        cams.append(Camera.from_viser(q, pos, fov, width / height, height))
    return cams


def write_mp4(
    path: Path,
    cameras: list[Camera],
    render: Callable[[Camera], np.ndarray],
    fps: int,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render every camera and write an H.264 MP4 atomically (a temp file renamed at the end).

    Frames are rendered and streamed to the encoder one at a time. ``progress(done, total)`` is
    called after each frame; raising there (``Cancelled``) stops the video, and nothing is left."""
    with atomic_video(path, fps) as append:
        for i, cam in enumerate(cameras):
            append(render(cam))
            if progress is not None:
                progress(i + 1, len(cameras))
    return path
