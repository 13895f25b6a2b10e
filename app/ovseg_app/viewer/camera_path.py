"""A tab's camera path, app side: the path's video (streamed to the atomic video writer), its
``camera_path.json`` files in ``<output_dir>/camera_paths/`` (where nerfview keeps them), and the
path drawn into the tab's own 3D scene (keyframe frustums and the spline; other tabs see nothing).
The path maths and the file format are ``ovseg_core.camera_path``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ovseg_app.viewer.exports import output_path
from ovseg_core.camera import Camera
from ovseg_core.camera_path import CameraPath, NerfstudioCameraPath, dumps_camera_path, read_camera_path
from ovseg_core.errors import UsageError
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.io.video import atomic_video

PATHS_DIR = "camera_paths"
MAX_PATH_FILE_BYTES = 20_000_000
"""A camera_path.json of 3000 frames is about 2 MB; anything far larger is refused unread."""
OVERLAY = "/ovseg/camera_path"


def write_mp4(
    path: Path,
    cameras: list[Camera],
    render: Callable[[Camera], np.ndarray],
    fps: float,
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


def json_name(name: str) -> str:
    """A path name typed in the panel as a file name ending in ``.json``."""
    stem = re.sub(r"\.json$", "", Path(name.strip()).name, flags=re.IGNORECASE) or "camera_path"
    return f"{stem}.json"


def save_path_file(output_dir: Path | None, name: str, path: CameraPath) -> tuple[str, bytes, Path | None]:
    """The path as ``camera_path.json`` bytes, written into ``<output_dir>/camera_paths/`` when there
    is an output folder (never over an earlier file). Returns (file name, bytes, where saved)."""
    data = dumps_camera_path(path)
    if output_dir is None:
        return json_name(name), data, None
    saved = atomic_write_bytes(output_path(output_dir / PATHS_DIR, json_name(name)), data)
    return saved.name, data, saved


def saved_path_files(output_dir: Path | None) -> list[str]:
    """Names of the camera paths saved in ``<output_dir>/camera_paths/``, newest first."""
    folder = output_dir / PATHS_DIR if output_dir is not None else None
    if folder is None or not folder.is_dir():
        return []
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.name for p in files[:100]]


def read_path_file(data: bytes, source: str, position_scale: float = 1.0) -> NerfstudioCameraPath:
    """A camera_path.json with its keyframes (a path without keyframes cannot be edited), positions
    multiplied by ``position_scale``."""
    if len(data) > MAX_PATH_FILE_BYTES:
        raise UsageError(f"{source}: {len(data):,} bytes is too large for a camera path")
    loaded = read_camera_path(data, source, position_scale=position_scale)
    if loaded.path is None:
        raise UsageError(f"{source}: key 'keyframes': fewer than 2 keyframes, so there is no path to edit")
    return loaded


def load_saved_path(output_dir: Path | None, name: str, position_scale: float = 1.0) -> NerfstudioCameraPath:
    if name not in saved_path_files(output_dir):  # only files listed there, never a path a client made up
        raise UsageError(f"no saved camera path {name[:80]!r}")
    assert output_dir is not None
    file = output_dir / PATHS_DIR / name
    return read_path_file(file.read_bytes(), str(file), position_scale)


class PathOverlay:
    """The keyframes (red frustums) and the sampled path (a line) in one tab's 3D scene."""

    def __init__(self, client: Any, points: Callable[[], np.ndarray]) -> None:
        """``points()``: the scene's points ``[N, 3]``, which size the frustums (read on first show)."""
        self.client, self._points = client, points
        self.scale: float | None = None
        self.nodes: list[Any] = []

    def clear(self) -> None:
        for node in self.nodes:
            node.remove()
        self.nodes = []

    def show(self, path: CameraPath | None) -> None:
        self.clear()
        if path is None or not path.keyframes:
            return
        if self.scale is None:
            p = self._points()
            size = float(np.linalg.norm(np.percentile(p, 95, 0) - np.percentile(p, 5, 0))) if len(p) else 1.0
            self.scale = 0.04 * max(size, 1e-3)
        scene, aspect = self.client.scene, path.width / path.height
        for i, k in enumerate(path.keyframes):
            fov = np.radians(path.default_fov_deg if k.fov_deg is None else k.fov_deg)
            self.nodes.append(
                scene.add_camera_frustum(
                    f"{OVERLAY}/key_{i}",
                    fov=float(fov),
                    aspect=aspect,
                    scale=self.scale,
                    color=(200, 10, 30),
                    wxyz=k.wxyz,
                    position=k.position,
                )  # fmt: skip
            )
        if len(path.keyframes) >= 2:
            c2w, _ = path.sample(np.linspace(0.0, 1.0, 20 * len(path.keyframes) + 1))
            points = c2w[:, :3, 3].astype(np.float32)
            segments = np.stack([points[:-1], points[1:]], axis=1)
            self.nodes.append(
                scene.add_line_segments(
                    f"{OVERLAY}/spline", segments, colors=(220, 220, 220), thickness=2.0, thickness_units="screen"
                )
            )
