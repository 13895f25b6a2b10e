"""Camera conventions: OpenCV w2c + pixel K, and conversions from viser, NeRF/OpenGL and COLMAP."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ovseg_core.camera import Camera, intrinsics, load_camera_json, orbit_cameras, quat_to_rotmat
from ovseg_core.errors import SceneFormatError
from ovseg_core.io.cameras import load_colmap, load_transforms_json


def project(cam: Camera, p) -> np.ndarray:
    uv, z = cam.project(np.asarray([p], float))
    return np.array([uv[0, 0], uv[0, 1], z[0]])


def test_project_is_the_pinhole_model_in_the_points_precision():
    cam = Camera.look_at([3, -2, 1], [0, 0, 0.5], width=64, height=48)
    pts = np.random.default_rng(0).normal(size=(50, 3))
    uv, z = cam.project(pts)
    for p, (u, v), d in zip(pts, uv, z):  # one point at a time: x_c = R p + t, (u, v) = (K x_c)[:2] / z_c
        pc = cam.w2c[:3, :3] @ p + cam.w2c[:3, 3]
        assert np.allclose((cam.K @ pc)[:2] / pc[2], (u, v)) and np.isclose(pc[2], d)
    uv32, z32 = cam.project(pts.astype(np.float32))
    assert uv32.dtype == np.float32 and np.allclose(uv32, uv, rtol=1e-4, atol=1e-3)


def test_look_at_centres_target_and_keeps_up_up():
    cam = Camera.look_at([3, -2, 1], [0, 0, 0.5], width=64, height=48)
    u, v, z = project(cam, [0, 0, 0.5])
    assert np.allclose([u, v], [32, 24]) and z > 0
    _, v_above, _ = project(cam, [0, 0, 1.0])
    assert v_above < 24  # world +z appears higher in the image (y down)


def test_viser_camera_conversion():
    # viser: wxyz rotates camera->world, OpenCV axes; identity looks along +z with y down
    cam = Camera.from_viser((1, 0, 0, 0), (0, 0, -2), fov_y=math.radians(60), aspect=4 / 3, height=300)
    assert (cam.width, cam.height) == (400, 300)
    assert np.isclose(cam.K[1, 1], 150 / math.tan(math.radians(30)))
    assert np.allclose(project(cam, [0, 0, 0])[:2], [200, 150])
    assert project(cam, [0, 0.1, 0])[1] > 150  # +y is down
    assert np.isclose(cam.fov_y, math.radians(60))
    with pytest.raises(ValueError, match="field of view"):
        Camera.from_viser((1, 0, 0, 0), (0, 0, 0), fov_y=4.0, aspect=1, height=10)


def test_opengl_c2w_conversion():
    # OpenGL camera at +z looking down -z (identity rotation) sees the origin at the centre
    c2w = np.eye(4)
    c2w[2, 3] = 3.0
    cam = Camera.from_opengl_c2w(c2w, intrinsics(50, 50, 32, 24), 64, 48)
    u, v, z = project(cam, [0, 0, 0])
    assert np.allclose([u, v, z], [32, 24, 3])
    assert project(cam, [0, 1, 0])[1] < 24  # OpenGL +y up -> image up


def test_camera_validation_and_json_round_trip():
    cam = Camera.look_at([1, 1, 1], [0, 0, 0], width=20, height=10)
    again = load_camera_json(json.dumps(cam.to_dict()))[0]
    assert again == cam and hash(again) == hash(cam)
    with pytest.raises(ValueError, match="missing"):
        load_camera_json('{"w2c": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}', "cam.json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_camera_json("{", "cam.json")
    with pytest.raises(ValueError, match="focal"):
        Camera(np.eye(4), np.zeros((3, 3)), 10, 10)
    half = cam.downsampled(2)
    assert (half.width, half.height) == (10, 5) and np.isclose(half.K[0, 0], cam.K[0, 0] / 2)


def test_orbit_looks_at_centre():
    cams = orbit_cameras([1, 2, 3], 4.0, 8, width=32, height=32)
    for cam in cams:
        assert np.allclose(project(cam, [1, 2, 3])[:2], [16, 16])
        assert np.isclose(np.linalg.norm(cam.position - [1, 2, 3]), 4.0)


def test_quat_to_rotmat_is_rotation():
    r = quat_to_rotmat(np.array([0.3, -0.2, 0.9, 0.1]))
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1)


def test_transforms_json_on_fox(shared_data):
    views = load_transforms_json(shared_data / "instant_ngp_fox")
    assert len(views) >= 50
    assert all(v.image_path.exists() for v in views[:5])
    cam = views[0].camera
    assert (cam.width, cam.height) == (1080, 1920)
    assert views[0].distortion  # the fox has k1/k2/p1/p2
    # all cameras look towards a common region: the point closest to every optical axis is in front of them
    a, b = np.zeros((3, 3)), np.zeros(3)
    for v in views:
        c2w = v.camera.c2w
        d, o = c2w[:3, 2], c2w[:3, 3]
        m = np.eye(3) - np.outer(d, d)
        a += m
        b += m @ o
    focus = np.linalg.solve(a, b)
    in_front = [project(v.camera, focus)[2] > 0 for v in views]
    assert all(in_front)


def test_colmap_text_model(tmp_path):
    pytest.importorskip("pycolmap")
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text("1 PINHOLE 64 48 50 52 32 24\n")
    # qw qx qy qz tx ty tz: identity rotation, camera 3 units behind the origin along z
    (model / "images.txt").write_text("1 1 0 0 0 0 0 3 1 b.png\n\n2 1 0 0 0 0 1 3 1 a.png\n\n")
    (model / "points3D.txt").write_text("")
    views = load_colmap(tmp_path)
    assert [v.name for v in views] == ["a.png", "b.png"]
    cam = views[1].camera
    assert np.allclose(cam.K, intrinsics(50, 52, 32, 24))
    assert np.allclose(project(cam, [0, 0, 0]), [32, 24, 3])
    assert views[0].image_path == (tmp_path / "images" / "a.png").resolve()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"w2c": [[0.0] * 4] * 4}, r"last row must be \[0, 0, 0, 1\]"),
        ({"w2c": np.diag([2.0, 2.0, 2.0, 1.0]).tolist()}, "not rigid"),
        ({"w2c": np.diag([-1.0, 1.0, 1.0, 1.0]).tolist()}, r"not rigid: .* determinant is -1"),
        ({"w2c": [[float("nan")] * 4] * 4}, "finite"),
        ({"K": [[0.0] * 3] * 3}, "focal lengths must be positive"),
        ({"K": [[20.0, 3.0, 8.0], [0.0, 20.0, 6.0], [0.0, 0.0, 1.0]]}, r"K must be \[\[fx, 0, cx\]"),
        ({"K": [[20.0, 0.0, 8.0], [0.0, 20.0, 6.0], [1.0, 1.0, 1.0]]}, r"K must be \[\[fx, 0, cx\]"),
        ({"width": 15.5}, "width must be a whole number"),
        ({"height": "12"}, "height must be a whole number"),
    ],
)
def test_degenerate_camera_json_is_refused_naming_the_file(change, match):
    good = Camera.look_at([1, 2, 3], [0, 0, 0], width=16, height=12).to_dict()
    with pytest.raises(SceneFormatError, match=match) as info:
        load_camera_json(json.dumps({**good, **change}), "views/cam.json")
    assert str(info.value).startswith("views/cam.json: ")
    with pytest.raises(SceneFormatError, match=f"views/cam.json: camera 1: .*{match}"):
        load_camera_json(json.dumps([good, {**good, **change}]), "views/cam.json")
    assert load_camera_json(json.dumps(good), "views/cam.json")[0] == Camera.from_dict(good)
