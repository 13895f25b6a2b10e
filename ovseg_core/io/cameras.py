"""Posed images from capture datasets: nerfstudio/instant-ngp ``transforms.json``, COLMAP
models (through pycolmap) and fvdb-reality-capture's ``SfmScene``. All become OpenCV
``Camera`` objects plus the image path."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ovseg_core.camera import Camera, intrinsics
from ovseg_core.errors import MissingDependencyError, SceneFormatError


@dataclasses.dataclass(frozen=True)
class PosedImage:
    """A dataset view: its camera and where its photo lies."""

    camera: Camera
    image_path: Path
    name: str
    distortion: tuple[float, ...] = ()
    """Lens distortion coefficients as the dataset gives them (renderers assume none)."""


def load_transforms_json(path: str | os.PathLike[str]) -> list[PosedImage]:
    """Read a nerfstudio / instant-ngp ``transforms.json`` (camera-to-world, OpenGL axes).

    Intrinsics come from per-frame keys when present, else the file's top level
    (``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h``, or ``camera_angle_x``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise SceneFormatError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise SceneFormatError(f"{path}: not valid JSON: {e}") from e
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SceneFormatError(f"{path}: no 'frames' list")
    out = []
    for i, frame in enumerate(frames):
        merged = {**meta, **frame}
        if "file_path" not in frame or "transform_matrix" not in frame:
            raise SceneFormatError(f"{path}: frame {i} lacks 'file_path' or 'transform_matrix'")
        image_path = (path.parent / frame["file_path"]).resolve()
        if not image_path.suffix and image_path.with_suffix(".png").exists():
            image_path = image_path.with_suffix(".png")
        width, height = merged.get("w"), merged.get("h")
        if width is None or height is None:
            width, height = _image_size(image_path)
        fx = merged.get("fl_x")
        if fx is None:
            if "camera_angle_x" not in merged:
                raise SceneFormatError(f"{path}: frame {i} has neither fl_x nor camera_angle_x")
            fx = 0.5 * width / np.tan(0.5 * merged["camera_angle_x"])
        fy = merged.get("fl_y", fx)
        cx, cy = merged.get("cx", width / 2.0), merged.get("cy", height / 2.0)
        c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
        if c2w.shape not in ((4, 4), (3, 4)):
            raise SceneFormatError(f"{path}: frame {i} transform_matrix has shape {list(c2w.shape)}")
        dist = tuple(float(merged.get(k, 0.0)) for k in ("k1", "k2", "p1", "p2"))
        camera = Camera.from_opengl_c2w(c2w, intrinsics(fx, fy, cx, cy), int(width), int(height))
        out.append(PosedImage(camera, image_path, Path(frame["file_path"]).name, dist if any(dist) else ()))
    return out


def load_colmap(path: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None) -> list[PosedImage]:
    """Read a COLMAP sparse model (``cameras``/``images``/``points3D`` as .bin or .txt) with pycolmap.

    ``path`` may be the model folder or a dataset root holding ``sparse/0`` (or ``sparse``);
    images are looked up in ``images_dir`` (default: ``<root>/images``). Views are sorted by name.
    """
    try:
        import pycolmap
    except ImportError as e:
        raise MissingDependencyError("pycolmap is not installed. Install it with: pip install pycolmap") from e
    root = Path(path)
    model = next((p for p in (root / "sparse" / "0", root / "sparse", root) if _is_colmap_model(p)), None)
    if model is None:
        raise SceneFormatError(f"{root}: no COLMAP model (cameras/images .bin or .txt) found in it, sparse/0 or sparse")
    rec = pycolmap.Reconstruction(str(model))
    # images live beside sparse/ in a dataset root; a bare model folder has them beside itself
    img_root = Path(images_dir) if images_dir else (root / "images" if model != root else model.parent / "images")
    out = []
    for image in sorted(rec.images.values(), key=lambda im: im.name):
        if hasattr(image, "has_pose") and not image.has_pose:
            continue
        cam = image.camera if image.camera is not None else rec.cameras[image.camera_id]
        pose = image.cam_from_world() if callable(image.cam_from_world) else image.cam_from_world
        w2c = np.eye(4)
        w2c[:3, :4] = np.asarray(pose.matrix(), dtype=np.float64)
        K = np.asarray(cam.calibration_matrix(), dtype=np.float64)
        extra = [float(cam.params[i]) for i in cam.extra_params_idxs()] if hasattr(cam, "extra_params_idxs") else []
        if any(extra):
            warnings.warn(f"{model}: camera model {cam.model_name} has distortion; renderers ignore it", stacklevel=2)
        camera = Camera(w2c, K, int(cam.width), int(cam.height))
        out.append(
            PosedImage(camera, (img_root / image.name).resolve(), image.name, tuple(extra) if any(extra) else ())
        )
    if not out:
        raise SceneFormatError(f"{model}: the COLMAP model has no registered images")
    return out


def from_sfm_scene(sfm_scene: Any) -> list[PosedImage]:
    """Posed images of an fvdb-reality-capture ``SfmScene`` (already OpenCV world-to-camera)."""
    out = []
    for meta in sfm_scene.images:
        cm = meta.camera_metadata
        K = intrinsics(cm.fx, cm.fy, cm.cx, cm.cy)
        camera = Camera(np.asarray(meta.world_to_camera_matrix, dtype=np.float64), K, int(cm.width), int(cm.height))
        coeffs = getattr(cm, "distortion_coeffs", None)
        dist = tuple(float(v) for v in np.asarray(() if coeffs is None else coeffs, dtype=np.float64).ravel())
        out.append(PosedImage(camera, Path(meta.image_path), Path(meta.image_path).name, dist if any(dist) else ()))
    return out


def _is_colmap_model(p: Path) -> bool:
    return p.is_dir() and any((p / f"{n}{ext}").exists() for n in ("cameras", "images") for ext in (".bin", ".txt"))


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except OSError as e:
        raise SceneFormatError(
            f"{path}: cannot read image to find its size (and no w/h in transforms.json): {e}"
        ) from e
