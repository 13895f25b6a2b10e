"""Write a synthetic capture: renders of a scene from cameras as PNGs plus a nerfstudio
``transforms.json`` (camera-to-world, OpenGL axes), i.e. exactly what a user's dataset looks like."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from ovseg_core.camera import Camera
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.render import Renderer, make_renderer
from ovseg_core.scene import GaussianScene

_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def write_capture(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    out_dir: str | os.PathLike[str],
    *,
    renderer: Renderer | None = None,
) -> Path:
    """Render ``cameras`` into ``out_dir/images/frame_XXXXX.png`` and write ``transforms.json``
    (per-frame intrinsics). Returns the path of ``transforms.json``."""
    out = Path(out_dir)
    renderer = renderer or make_renderer("cpu")
    frames = []
    for i, cam in enumerate(cameras):
        rgb = renderer.render(scene, cam).rgb[0].clamp(0, 1).cpu().numpy()
        name = f"images/frame_{i:05d}.png"
        atomic_write_bytes(out / name, iio.imwrite("<bytes>", (rgb * 255 + 0.5).astype(np.uint8), extension=".png"))
        K = cam.K
        frames.append(
            {
                "file_path": name,
                "transform_matrix": (cam.c2w @ _CV_TO_GL).tolist(),
                "fl_x": float(K[0, 0]),
                "fl_y": float(K[1, 1]),
                "cx": float(K[0, 2]),
                "cy": float(K[1, 2]),
                "w": cam.width,
                "h": cam.height,
            }
        )
    path = out / "transforms.json"
    atomic_write_bytes(path, json.dumps({"frames": frames}, indent=1).encode())
    return path
