"""Up-axis detection and framing: z-up and COLMAP y-down scenes (made here and real), cameras,
far floaters, and ``ovseg-render``'s default orbit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovseg_app.demo import load_demo_scene
from ovseg_core.camera import Camera, orbit_cameras
from ovseg_core.orientation import (
    AXES,
    default_orbit,
    detect_up,
    frame_view,
    rotate_scene,
    rotation_to,
    snap_axis,
    up_from_cameras,
)
from ovseg_core.render import make_renderer
from ovseg_core.render.projection import covariances
from ovseg_core.synthetic import scene_from_points

Z_UP_TO_Y_DOWN = rotation_to((0, 0, 1), (0, -1, 0))


def _up(scene) -> str:  # noqa: ANN001
    return detect_up(scene.means.numpy(), opacities=scene.opacities.numpy()).axis


def test_rotation_to_maps_one_direction_onto_another_and_is_a_rotation():
    for a in AXES.values():
        for b in AXES.values():
            r = rotation_to(a, b)
            assert np.allclose(r @ np.asarray(a), b, atol=1e-9)
            assert np.allclose(r @ r.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(r), 1.0)


def test_rotate_scene_turns_centres_and_covariances():
    scene = load_demo_scene()
    turned = rotate_scene(scene, Z_UP_TO_Y_DOWN)
    r = torch.as_tensor(Z_UP_TO_Y_DOWN, dtype=torch.float32)
    assert torch.allclose(turned.means, scene.means @ r.T, atol=1e-5)
    before = covariances(scene.quats, scene.log_scales)
    after = covariances(turned.quats, turned.log_scales)
    assert torch.allclose(after, r @ before @ r.T, atol=1e-5)
    assert np.array_equal(turned.extras["object_id"], scene.extras["object_id"])


def test_demo_is_z_up_and_the_demo_in_colmap_convention_is_y_down():
    scene = load_demo_scene()
    assert _up(scene) == "+z"
    assert _up(rotate_scene(scene, Z_UP_TO_Y_DOWN)) == "-y"


def test_cameras_decide_when_given():
    scene = load_demo_scene()  # z-up geometry, but the capture's cameras say -y
    cams = orbit_cameras((0, 0, 0), 3.0, 6, up=(0, -1, 0))
    guess = detect_up(scene.means.numpy(), cameras=cams)
    assert (guess.axis, guess.source) == ("-y", "cameras")
    assert np.allclose(up_from_cameras(cams), (0, -1, 0), atol=1e-9)
    # cameras that disagree (half upside down) do not average into a direction
    flipped = orbit_cameras((0, 0, 0), 3.0, 6, up=(0, 1, 0))
    assert up_from_cameras([*cams, *flipped]) is None


def test_a_shapeless_blob_falls_back_to_the_colmap_convention():
    blob = np.random.default_rng(0).normal(size=(5000, 3))
    guess = detect_up(blob)
    assert (guess.axis, guess.source) == ("-y", "convention")
    assert detect_up(blob, convention="+z").axis == "+z"
    with pytest.raises(ValueError, match="convention"):
        detect_up(blob, convention="up")


def test_snap_axis_names_the_nearest_axis():
    assert snap_axis((0.1, -0.9, 0.2)) == "-y" and snap_axis((0.2, 0.1, 0.97)) == "+z"


def test_garden_points_up_axis_in_every_orientation(shared_data):
    """The real garden (ground below, plants and a table on it) is found upright whichever world
    axis it is turned onto: its shape alone (thinnest axis, mass low) says which way is up."""
    data = np.load(shared_data / "gsplat_test_garden" / "test_garden.npz")
    points = data["means3d"].astype(np.float64)
    cams = [Camera(data["viewmats"][i], data["Ks"][i], int(data["width"]), int(data["height"])) for i in range(3)]
    assert detect_up(points, cameras=cams).axis == "+z"  # its own cameras: z up
    for name, axis in AXES.items():
        turned = points @ rotation_to((0, 0, 1), axis).T
        assert detect_up(turned).axis == name, name


def test_real_inria_capture_is_y_down(shared_data):
    from ovseg_core.io import load_scene

    scene = load_scene(shared_data / "kacytran_try_inria" / "point_cloud_iter7000.ply")
    assert _up(scene) == "-y"


def test_framing_ignores_far_floaters():
    rng = np.random.default_rng(1)
    bulk = rng.uniform(-1, 1, size=(20000, 3))
    floaters = rng.normal(size=(400, 3)) * 500.0  # 2% of the Gaussians, hundreds of units out
    means = np.concatenate([bulk, floaters])
    view = frame_view(means, (0, 0, 1), fov_y_deg=60)
    assert view.radius < 2.5  # the bulk's half-diagonal is sqrt(3); the floaters' would be hundreds
    assert np.linalg.norm(view.look_at) < 0.2
    cam = Camera.look_at(view.position, view.look_at, view.up, width=200, height=200, fov_y_deg=60)
    px, depth = cam.project(bulk)
    inside = (depth > 0) & (px >= 0).all(1) & (px < 200).all(1)
    assert inside.mean() > 0.95  # the bulk fills the view ...
    spread = px[inside].max(0) - px[inside].min(0)
    assert (spread > 0.4 * 200).all()  # ... and is not a dot in it


def test_default_orbit_shows_a_y_down_capture_as_its_z_up_original():
    scene = load_demo_scene()
    renderer = make_renderer("cpu")

    def frame(s, up=None):  # noqa: ANN001, ANN202
        cam = default_orbit(s, 1, up=up, width=96, height=72)[0]
        return renderer.render(s, cam).rgb[0].numpy()

    upright = frame(scene)
    y_down = frame(rotate_scene(scene, Z_UP_TO_Y_DOWN))
    upside_down = frame(scene, up=(0, 0, -1))
    # the detected y-down view matches the upright one far better than a flipped view does
    assert np.abs(y_down - upright).mean() < 0.25 * np.abs(upside_down - upright).mean()
    with pytest.raises(ValueError, match="non-zero"):
        default_orbit(scene, 1, up=(0, 0, 0))


def test_gaussians_from_points_in_colmap_convention_round_trip_through_an_inria_ply(tmp_path):
    from ovseg_core.io import load_scene, save_scene

    rng = np.random.default_rng(2)
    ground = np.c_[rng.uniform(-3, 3, (3000, 2)), rng.normal(0, 0.02, 3000)]
    tree = np.c_[rng.normal(0, 0.2, (600, 2)), rng.uniform(0, 2.5, 600)]
    scene = scene_from_points(np.concatenate([ground, tree]), rng.integers(0, 255, (3600, 3)))
    path = save_scene(rotate_scene(scene, Z_UP_TO_Y_DOWN), tmp_path / "capture.ply")
    assert _up(scene) == "+z" and _up(load_scene(path)) == "-y"


@pytest.mark.parametrize("offset", [1e11, -9e11])
def test_default_orbit_frames_a_tiny_scene_far_from_the_origin(offset):
    """A millimetre of Gaussians 1e11 away (readers keep centres up to 1e12; beyond, float64 cannot
    keep the camera off its target): framed from close by, covering the middle of the view."""
    g = np.random.default_rng(0)
    points = offset + g.normal(scale=1e-3, size=(200, 3))
    scene = scene_from_points(points, np.full((200, 3), 0.5))
    cam = default_orbit(scene, 2, width=24, height=16)[0]
    stored = scene.means.double().mean(0).numpy()  # float32 centres: 1e11 rounds to steps of 8192
    assert 1e-3 < np.linalg.norm(cam.position - stored) < 10
    out = make_renderer("cpu").render(scene, cam)
    assert out.alpha[0, 8, 12, 0] > 0.5 and torch.isfinite(out.rgb).all()
