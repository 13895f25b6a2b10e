"""A capture of random photos on an orbit (PNG images plus a transforms.json), for dataset and
preprocessing tests that need real files but no particular content."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ovseg_core.camera import Camera, orbit_cameras

_GL = np.diag([1.0, -1.0, -1.0, 1.0])
WIDTH, HEIGHT = 64, 48


def write_capture(root: Path, num_views: int = 5, seed: int = 0) -> list[Camera]:
    """PNG photos plus a transforms.json; frames listed in reverse name order. Returns the cameras by name."""
    rng = np.random.default_rng(seed)
    cams = orbit_cameras([0, 0, 0], 4.0, num_views, width=WIDTH, height=HEIGHT, fov_y_deg=50)
    (root / "images").mkdir(parents=True, exist_ok=True)
    frames = []
    for i, cam in enumerate(cams):
        Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(root / "images" / f"{i:04d}.png")
        frames.append({"file_path": f"images/{i:04d}.png", "transform_matrix": (cam.c2w @ _GL).tolist()})
    k = cams[0].K
    meta = {
        "fl_x": k[0, 0],
        "fl_y": k[1, 1],
        "cx": k[0, 2],
        "cy": k[1, 2],
        "w": WIDTH,
        "h": HEIGHT,
        "frames": frames[::-1],
    }
    (root / "transforms.json").write_text(json.dumps(meta))
    return cams
