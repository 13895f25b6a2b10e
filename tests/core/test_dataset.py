"""Capture datasets: transforms.json / COLMAP / SfmScene loading, downsampling, validation split,
and alignment with a normalised reconstruction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from random_capture import HEIGHT, WIDTH, write_capture
from scipy.spatial.transform import Rotation

from ovseg_core.camera import Camera, quat_to_rotmat
from ovseg_core.data import (
    DatasetConfig,
    load_dataset,
    normalization_from_metadata,
    similarity_parts,
    transform_camera,
    transform_points,
)
from ovseg_core.errors import SceneFormatError


def project(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points [N, 3] -> pixels [N, 2] and depths [N]."""
    return camera.project(points)


def random_similarity(seed: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.eye(4)
    t[:3, :3] = scale * quat_to_rotmat(rng.normal(size=4))
    t[:3, 3] = rng.normal(size=3) * 3
    return t


def assert_same_camera(a: Camera, b: Camera, atol: float = 1e-9) -> None:
    assert (a.width, a.height) == (b.width, b.height)
    np.testing.assert_allclose(a.w2c, b.w2c, atol=atol)
    np.testing.assert_allclose(a.K, b.K, atol=atol)


def test_transforms_json_views_sorted_with_cameras(tmp_path):
    cams = write_capture(tmp_path)
    for path in (tmp_path, tmp_path / "transforms.json"):
        ds = load_dataset(path)
        assert len(ds) == 5 and ds.root == tmp_path
        assert [v.name for v in ds] == [f"{i:04d}.png" for i in range(5)]
        assert [v.index for v in ds] == list(range(5))
        for view, cam in zip(ds, cams):
            assert_same_camera(view.camera, cam)
        assert ds.train_indices == list(range(5)) and ds.val_indices == []
        np.testing.assert_array_equal(ds.normalization_transform, np.eye(4))


def test_downsampling_scales_camera_and_averages_pixel_areas(tmp_path):
    write_capture(tmp_path)
    full = load_dataset(tmp_path)
    half = load_dataset(tmp_path, DatasetConfig(image_downsample_factor=2))
    cam = half[1].camera
    assert (cam.width, cam.height) == (WIDTH // 2, HEIGHT // 2)
    np.testing.assert_allclose(cam.K[:2], full[1].camera.K[:2] / 2)
    np.testing.assert_array_equal(cam.w2c, full[1].camera.w2c)

    original = full.load_image(1)
    assert original.shape == (HEIGHT, WIDTH, 3) and original.dtype == np.uint8
    small = half.load_image(1)
    assert small.shape == (HEIGHT // 2, WIDTH // 2, 3) and small.dtype == np.uint8
    block_means = original.reshape(HEIGHT // 2, 2, WIDTH // 2, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(small - block_means).max() <= 1.0  # PIL's fixed-point BOX filter rounds within a level


def test_every_nth_view_held_out_for_validation(tmp_path):
    write_capture(tmp_path)
    ds = load_dataset(tmp_path, DatasetConfig(use_every_n_as_val=2))
    assert ds.val_indices == [0, 2, 4]
    assert ds.train_indices == [1, 3]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_downsample_factor": 0},
        {"use_every_n_as_val": 1},
        {"use_every_n_as_val": 0},
        {"normalization": "what"},
        {"normalization_transform": (1.0, 2.0)},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        DatasetConfig(**kwargs)


def test_rgba_and_grey_photos_load_as_rgb(tmp_path):
    write_capture(tmp_path, num_views=2)
    rgba = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "images" / "0000.png")
    grey = np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "images" / "0001.png")
    ds = load_dataset(tmp_path)
    np.testing.assert_array_equal(ds.load_image(0), rgba[..., :3])
    np.testing.assert_array_equal(ds.load_image(1), np.repeat(grey[..., None], 3, axis=2))


def test_missing_image_and_unknown_folder_name_the_path(tmp_path):
    write_capture(tmp_path / "scene")
    (tmp_path / "scene" / "images" / "0003.png").unlink()
    with pytest.raises(SceneFormatError, match="0003.png"):
        load_dataset(tmp_path / "scene")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneFormatError, match="empty"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(SceneFormatError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")


def test_photo_with_wrong_aspect_is_refused(tmp_path):
    write_capture(tmp_path, num_views=1)
    Image.new("RGB", (HEIGHT, WIDTH)).save(tmp_path / "images" / "0000.png")  # rotated
    with pytest.raises(SceneFormatError, match="aspect"):
        load_dataset(tmp_path).load_image(0)


def test_colmap_scene_matches_transforms_json(tmp_path):
    pytest.importorskip("pycolmap")
    cams = write_capture(tmp_path)
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    k = cams[0].K
    (model / "cameras.txt").write_text(f"1 PINHOLE {WIDTH} {HEIGHT} {k[0, 0]} {k[1, 1]} {k[0, 2]} {k[1, 2]}\n")
    lines = []
    for i, cam in enumerate(cams):
        q = _rotmat_to_quat(cam.w2c[:3, :3])
        t = cam.w2c[:3, 3]
        numbers = " ".join(f"{float(v):.17g}" for v in [*q, *t])
        lines += [f"{i + 1} {numbers} 1 {i:04d}.png", ""]
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    (model / "points3D.txt").write_text("")
    (tmp_path / "transforms.json").unlink()
    ds = load_dataset(tmp_path, DatasetConfig(image_downsample_factor=2))
    assert [v.name for v in ds] == [f"{i:04d}.png" for i in range(5)]
    for view, cam in zip(ds, cams):
        assert_same_camera(view.camera, cam.downsampled(2), atol=1e-6)
    assert ds.load_image(0).shape == (HEIGHT // 2, WIDTH // 2, 3)


def test_similarity_keeps_every_point_on_its_pixel():
    cam = Camera.look_at([3.0, -2.0, 1.5], [0.1, 0.2, 0.0], width=80, height=60)
    rng = np.random.default_rng(5)
    points = rng.normal(size=(50, 3)) * 0.5
    t = random_similarity(seed=7, scale=0.37)
    moved = transform_camera(cam, t)
    rot = moved.w2c[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) > 0
    np.testing.assert_array_equal(moved.K, cam.K)
    px, depth = project(cam, points)
    px2, depth2 = project(moved, transform_points(points, t))
    np.testing.assert_allclose(px2, px, atol=1e-8)
    np.testing.assert_allclose(depth2, 0.37 * depth, rtol=1e-10)
    np.testing.assert_allclose(moved.position, transform_points(cam.position[None], t)[0], atol=1e-10)


@pytest.mark.parametrize(
    "matrix",
    [
        np.diag([1.0, 2.0, 1.0, 1.0]),
        np.diag([-1.0, 1.0, 1.0, 1.0]),
        np.array([[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]),
    ],
    ids=["anisotropic", "reflection", "shear"],
)
def test_non_similarities_are_refused(matrix):
    with pytest.raises(ValueError, match="normalization transform"):
        similarity_parts(matrix)


def test_reconstruction_metadata_normalises_the_cameras(tmp_path):
    cams = write_capture(tmp_path)
    t = random_similarity(seed=3, scale=0.25)
    metadata = {"normalization_transform": t.astype(np.float32), "other": 1}  # as read from an fVDB PLY
    assert normalization_from_metadata(metadata).shape == (4, 4)
    assert normalization_from_metadata({"other": 1}) is None

    ds = load_dataset(tmp_path, DatasetConfig(image_downsample_factor=2), reconstruction_metadata=metadata)
    np.testing.assert_allclose(ds.normalization_transform, t, atol=1e-6)
    for view, cam in zip(ds, cams):
        assert_same_camera(view.camera, transform_camera(cam, t).downsampled(2), atol=1e-5)

    raw = load_dataset(tmp_path, DatasetConfig(normalization="none"), reconstruction_metadata=metadata)
    assert_same_camera(raw[0].camera, cams[0])

    explicit = random_similarity(seed=4, scale=2.0)
    ds2 = load_dataset(
        tmp_path, DatasetConfig(normalization_transform=tuple(explicit.ravel())), reconstruction_metadata=metadata
    )
    assert_same_camera(ds2[2].camera, transform_camera(cams[2], explicit), atol=1e-9)


class _SfmCamera:
    def __init__(self, cam: Camera) -> None:
        self.fx, self.fy, self.cx, self.cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
        self.width, self.height = cam.width, cam.height
        self.distortion_coeffs = np.empty(0, np.float32)


class _SfmImage:
    def __init__(self, cam: Camera, image_path: Path, transform: np.ndarray) -> None:
        # what fvdb-reality-capture's SfmPosedImageMetadata.transform does: c2w' = T @ c2w, w2c' = inv(c2w')
        self.world_to_camera_matrix = np.linalg.inv(transform @ cam.c2w)
        self.camera_metadata = _SfmCamera(cam)
        self.image_path = str(image_path)


class _SfmSceneLike:
    """The attributes of fvdb-reality-capture's SfmScene that load_dataset reads (it is not installed here)."""

    def __init__(self, cams: list[Camera], root: Path, transform: np.ndarray) -> None:
        self.images = [_SfmImage(c, root / "images" / f"{i:04d}.png", transform) for i, c in enumerate(cams)]
        self.transformation_matrix = transform


def test_sfm_scene_normalised_by_fvdb_gives_rigid_cameras_in_its_frame(tmp_path):
    cams = write_capture(tmp_path)
    t = random_similarity(seed=9, scale=0.5)
    scene = _SfmSceneLike(cams, tmp_path, t)
    ds = load_dataset(None, sfm_scene=scene)
    assert ds.root == tmp_path / "images"
    for view, cam in zip(ds, cams):
        assert_same_camera(view.camera, transform_camera(cam, t), atol=1e-9)
    # metadata naming the same frame changes nothing; an un-normalised scene gets moved into it
    ds_meta = load_dataset(tmp_path, sfm_scene=scene, reconstruction_metadata={"normalization_transform": t})
    assert_same_camera(ds_meta[3].camera, ds[3].camera, atol=1e-9)
    raw_scene = _SfmSceneLike(cams, tmp_path, np.eye(4))
    ds_raw = load_dataset(tmp_path, sfm_scene=raw_scene, reconstruction_metadata={"normalization_transform": t})
    assert_same_camera(ds_raw[3].camera, ds[3].camera, atol=1e-9)


def test_real_fox_photos_downsampled(shared_data):
    ds = load_dataset(shared_data / "instant_ngp_fox", DatasetConfig(image_downsample_factor=8, use_every_n_as_val=8))
    assert len(ds) == 67
    assert ds[0].name == "0001.jpg"
    cam = ds[0].camera
    assert (cam.width, cam.height) == (135, 240)
    assert math.isclose(cam.K[0, 0], 1375.52 / 8, rel_tol=1e-9)
    image = ds.load_image(0)
    assert image.shape == (240, 135, 3) and image.dtype == np.uint8 and image.std() > 10
    assert len(ds.val_indices) == 9 and len(ds.train_indices) == 58


def _rotmat_to_quat(r: np.ndarray) -> list[float]:
    """(w, x, y, z) of a rotation matrix."""
    x, y, z, w = Rotation.from_matrix(r).as_quat()
    return [w, x, y, z]
