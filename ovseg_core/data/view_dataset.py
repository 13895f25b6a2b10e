"""Training views of a capture: cameras aligned with the reconstruction, and their photos.

``load_dataset`` reads a nerfstudio/instant-ngp ``transforms.json``, a COLMAP scene or an
fvdb-reality-capture ``SfmScene``; views are sorted by image name, downsampled, and moved into
the reconstruction's frame (see ``ovseg_core.data.normalization``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ovseg_core.camera import Camera
from ovseg_core.data.config import DatasetConfig
from ovseg_core.data.normalization import normalization_from_metadata, similarity_parts, transform_camera
from ovseg_core.errors import MissingDependencyError, SceneFormatError
from ovseg_core.io.cameras import PosedImage, from_sfm_scene, load_colmap, load_transforms_json

_ASPECT_TOL = 0.02  # photo vs camera aspect ratio; larger means the wrong photo or a rotated one


@dataclasses.dataclass(frozen=True)
class View:
    """One training view."""

    index: int
    """Position in the dataset (name order)."""
    name: str
    """Image file name; unique within the dataset."""
    camera: Camera
    """Downsampled and aligned with the reconstruction."""
    image_path: Path
    distortion: tuple[float, ...] = ()
    """Lens distortion as the dataset gives it; photos are used as they are (not undistorted)."""


class ViewDataset:
    """Ordered views of a capture (sorted by name) with their photos at the camera size."""

    def __init__(
        self,
        views: list[View],
        root: Path,
        config: DatasetConfig,
        normalization_transform: np.ndarray,
    ) -> None:
        self.views: tuple[View, ...] = tuple(views)
        self.root = Path(root)
        """Dataset folder; the default preprocessing cache lives under it."""
        self.config = config
        self.normalization_transform = np.asarray(normalization_transform, dtype=np.float64)
        """The similarity ``[4, 4]`` applied to the dataset's cameras (identity when none)."""
        n = config.use_every_n_as_val
        val = set(range(0, len(views), n)) if n > 0 else set()
        self.val_indices: list[int] = sorted(val)
        self.train_indices: list[int] = [i for i in range(len(views)) if i not in val]

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, i: int) -> View:
        return self.views[i]

    def __iter__(self) -> Iterator[View]:
        return iter(self.views)

    @property
    def cameras(self) -> list[Camera]:
        return [v.camera for v in self.views]

    def load_image(self, i: int) -> np.ndarray:
        """View ``i``'s photo as ``[H, W, 3]`` uint8 RGB at its camera's size.

        Shrinking averages pixel areas (PIL BOX, like OpenCV's INTER_AREA); alpha is dropped
        and grey is repeated into three channels.
        """
        view = self.views[i]
        width, height = view.camera.width, view.camera.height
        try:
            with Image.open(view.image_path) as im:
                im.load()
                rgb = _to_rgb(im)
        except OSError as e:
            raise SceneFormatError(f"{view.image_path}: cannot read image: {e}") from e
        if rgb.size != (width, height):
            file_aspect, cam_aspect = rgb.size[0] / rgb.size[1], width / height
            if abs(file_aspect / cam_aspect - 1.0) > _ASPECT_TOL:
                raise SceneFormatError(
                    f"{view.image_path}: image is {rgb.size[0]}x{rgb.size[1]} but its camera is "
                    f"{width}x{height}; the aspect ratios differ (wrong or rotated image?)"
                )
            shrinking = width <= rgb.size[0] and height <= rgb.size[1]
            resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
            rgb = rgb.resize((width, height), resample=resample)
        return np.array(rgb, dtype=np.uint8)


def load_dataset(
    path: str | os.PathLike[str] | None,
    config: DatasetConfig | None = None,
    sfm_scene: Any = None,
    reconstruction_metadata: Mapping[str, Any] | None = None,
    *,
    need_images: bool = True,
) -> ViewDataset:
    """Load a capture's views, downsampled and aligned with a reconstruction.

    Args:
        path: A ``transforms.json`` (or a folder holding one), or a COLMAP scene folder
            (``sparse/0`` or ``sparse`` beside ``images/``, or a bare model folder). With
            ``sfm_scene`` it is only the dataset root (default: the images' common folder).
        config: Downsampling, validation split and normalisation options.
        sfm_scene: An fvdb-reality-capture ``SfmScene`` to take the views from instead of ``path``.
            Its own ``transformation_matrix`` is undone first, so its cameras can be in any frame.
        reconstruction_metadata: The reconstruction's file metadata (``GaussianScene.metadata``);
            its ``normalization_transform`` aligns the cameras when ``config.normalization`` is
            ``"auto"``.
        need_images: Check that every view's photo exists (False for a caller that needs only cameras).

    Raises:
        SceneFormatError: nothing at ``path`` is a known dataset, or images are missing.
        ValueError: a normalisation transform is not a similarity.
    """
    config = config if config is not None else DatasetConfig()
    if sfm_scene is not None:
        posed, scene_frame = _read_sfm_scene(sfm_scene)
        root = Path(path) if path is not None else _common_folder(posed)
    elif path is None:
        raise ValueError("load_dataset needs a dataset path or an sfm_scene")
    else:
        posed, root, scene_frame = _read_path(Path(path))

    target = _target_transform(config, reconstruction_metadata, default=scene_frame)
    _check_unique_names(posed, root)
    if need_images:
        _check_images_exist(posed, root)

    views = []
    for index, p in enumerate(sorted(posed, key=lambda p: p.name)):
        camera = p.camera
        if not np.allclose(target, np.eye(4), rtol=0, atol=1e-12):
            camera = transform_camera(camera, target)
        if config.image_downsample_factor > 1:
            camera = camera.downsampled(config.image_downsample_factor)
        views.append(View(index, p.name, camera, p.image_path, p.distortion))
    if not views:
        raise SceneFormatError(f"{root}: the dataset has no views")
    return ViewDataset(views, root, config, target)


def _read_path(path: Path) -> tuple[list[PosedImage], Path, np.ndarray]:
    """Posed images in the dataset's own frame, the dataset root, and that frame (identity)."""
    if not path.exists():
        raise SceneFormatError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() != ".json":
            raise SceneFormatError(f"{path}: not a dataset; expected a transforms.json or a COLMAP scene folder")
        return load_transforms_json(path), path.parent, np.eye(4)
    if (path / "transforms.json").is_file():
        return load_transforms_json(path / "transforms.json"), path, np.eye(4)
    if any(_is_colmap_model(p) for p in (path / "sparse" / "0", path / "sparse", path)):
        return _read_colmap(path)
    raise SceneFormatError(
        f"{path}: not a dataset: found no transforms.json, and no COLMAP model (cameras and images "
        ".bin or .txt) in sparse/0, sparse/ or the folder itself"
    )


def _read_colmap(path: Path) -> tuple[list[PosedImage], Path, np.ndarray]:
    if importlib.util.find_spec("pycolmap") is not None:
        return load_colmap(path), path, np.eye(4)
    if importlib.util.find_spec("fvdb_reality_capture") is not None:
        from fvdb_reality_capture import SfmScene

        posed, frame = _read_sfm_scene(SfmScene.from_colmap(path))
        return posed, path, frame
    raise MissingDependencyError(
        f"{path}: reading a COLMAP scene needs pycolmap (pip install pycolmap) "
        "or fvdb-reality-capture (pip install fvdb-reality-capture)"
    )


def _read_sfm_scene(sfm_scene: Any) -> tuple[list[PosedImage], np.ndarray]:
    """Posed images of an ``SfmScene`` moved back to its capture frame, and the scene's frame.

    fvdb applies a transform T as ``c2w' = T @ c2w``, so ``w2c = w2c' @ T`` undoes it (and is
    rigid again when T scaled the scene).
    """
    raw = getattr(sfm_scene, "transformation_matrix", None)
    frame = np.eye(4) if raw is None else np.asarray(raw, dtype=np.float64)
    similarity_parts(frame)
    out = []
    for p in from_sfm_scene(sfm_scene):
        w2c = p.camera.w2c @ frame
        rot = w2c[:3, :3]
        if np.abs(rot @ rot.T - np.eye(3)).max() > 1e-3:
            raise SceneFormatError(
                f"SfmScene image {p.image_path}: its world-to-camera matrix is not rigid after undoing the "
                "scene's transformation_matrix"
            )
        w2c[3] = [0.0, 0.0, 0.0, 1.0]
        out.append(dataclasses.replace(p, camera=Camera(w2c, p.camera.K, p.camera.width, p.camera.height)))
    return out, frame


def _target_transform(config: DatasetConfig, metadata: Mapping[str, Any] | None, default: np.ndarray) -> np.ndarray:
    """The similarity from the capture frame into the reconstruction frame."""
    explicit = config.explicit_transform()
    if explicit is not None:
        similarity_parts(explicit)
        return explicit
    if config.normalization == "auto":
        from_metadata = normalization_from_metadata(metadata)
        if from_metadata is not None:
            return from_metadata
    return default


def _check_unique_names(posed: list[PosedImage], root: Path) -> None:
    seen: dict[str, Path] = {}
    for p in posed:
        if p.name in seen:
            raise SceneFormatError(
                f"{root}: two views share the image name {p.name!r} ({seen[p.name]}, {p.image_path})"
            )
        seen[p.name] = p.image_path


def _check_images_exist(posed: list[PosedImage], root: Path) -> None:
    missing = [p.image_path for p in posed if not p.image_path.is_file()]
    if missing:
        raise SceneFormatError(f"{root}: {len(missing)} of {len(posed)} images are missing, e.g. {missing[0]}")


def _common_folder(posed: list[PosedImage]) -> Path:
    if not posed:
        raise SceneFormatError("the SfmScene has no images")
    return Path(os.path.commonpath([str(p.image_path.parent) for p in posed]))


def _is_colmap_model(p: Path) -> bool:
    return p.is_dir() and any((p / f"{n}{ext}").exists() for n in ("cameras", "images") for ext in (".bin", ".txt"))


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL image -> 8-bit RGB (16/32-bit grey scaled down, alpha dropped, grey repeated)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.clip(np.asarray(im, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if im.mode == "F":
        grey = np.clip(np.asarray(im, dtype=np.float64) * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")
