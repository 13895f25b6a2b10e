"""Camera paths: nerfstudio's splines (an orbit stays an orbit, FOV and timing follow the keyframes,
the same poses as nerfview's own ``CameraPath``) and its ``camera_path.json`` (round trip, a
hand-written file, one-line errors naming the file and key)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ovseg_core.camera import Camera, orbit_cameras
from ovseg_core.camera_path import CameraPath, Keyframe, camera_path_json, dumps_camera_path, read_camera_path
from ovseg_core.errors import UsageError

CENTRE, RADIUS = np.array([0.5, -1.0, 2.0]), 3.0


def orbit_keys(n: int, elevation_deg: float = 20.0) -> tuple[Keyframe, ...]:
    cams = orbit_cameras(CENTRE, RADIUS, n, elevation_deg=elevation_deg, width=64, height=48)
    return tuple(Keyframe.from_camera(c, with_fov=False) for c in cams)


def centre_offsets(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each camera from the centre ``[T]``, and the angle (degrees) between its view axis
    and the direction to the centre ``[T]``."""
    to_centre = CENTRE - c2w[:, :3, 3]
    dist = np.linalg.norm(to_centre, axis=1)
    cos = np.einsum("ij,ij->i", c2w[:, :3, 2], to_centre / dist[:, None])
    return dist, np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_orbit_keyframes_give_an_orbit_not_a_polygon():
    path = CameraPath(orbit_keys(8), loop=True, fps=30, default_transition_s=1.0)
    c2w, _ = path.sample(path.frame_positions())
    assert len(c2w) == 240
    dist, off_axis = centre_offsets(c2w)
    assert np.abs(dist / RADIUS - 1).max() < 0.01  # straight lines between keys 45 degrees apart dip 7.6 %
    assert off_axis.max() < 2.0  # orientations follow: every frame still looks at the centre
    # once round, always forwards: the azimuth grows by under a frame's share of the circle twice over
    offset = c2w[:, :3, 3] - CENTRE
    turn = np.diff(np.unwrap(np.arctan2(offset[:, 1], offset[:, 0])))
    assert np.all(turn > 0) and np.all(turn < 2 * (2 * np.pi / 240)) and turn.sum() > 2 * np.pi * (1 - 2 / 240)


def test_a_path_passes_through_its_keyframes_at_their_times():
    keys = list(orbit_keys(6)[:4])
    keys[2] = Keyframe(keys[2].position, keys[2].wxyz, fov_deg=80.0, transition_s=3.0)
    path = CameraPath(tuple(keys), default_fov_deg=40.0, default_transition_s=1.0, fps=10)
    assert path.duration() == pytest.approx(5.0) and path.frame_count() == 50
    assert path.transition_times().tolist() == pytest.approx([0.0, 1.0, 4.0, 5.0])
    c2w, fov = path.sample(path.transition_times() / path.duration())
    for m, k in zip(c2w, keys):
        assert np.allclose(m, k.c2w(), atol=1e-9)
    assert fov.tolist() == pytest.approx([40.0, 40.0, 80.0, 40.0])
    _, fov = path.sample(np.linspace(0, 1, 51))
    assert np.argmax(fov) == 40 and fov.max() == pytest.approx(80.0)  # the widest frame is the key's, at 4 s


def test_fov_interpolates_between_keyframes():
    a, b = orbit_keys(8)[:2]
    path = CameraPath((Keyframe(a.position, a.wxyz, 30.0), Keyframe(b.position, b.wxyz, 60.0)), fps=10)
    _, fov = path.sample(np.linspace(0, 1, 11))
    assert fov[0] == pytest.approx(30.0) and fov[-1] == pytest.approx(60.0)
    assert np.all(np.diff(fov) > 0) and fov[5] == pytest.approx(45.0, abs=1.0)
    cams = path.cameras(3)
    assert [round(math.degrees(c.fov_y), 6) for c in (cams[0], cams[-1])] == [30.0, 60.0]
    assert (cams[0].width, cams[0].height) == (640, 360)


def test_tension_one_stops_at_keyframes_and_loop_closes():
    keys = orbit_keys(4)
    # tension 1: the velocity at an inner keyframe (the second, at 1/3) is zero, so frames bunch up there
    for tension, slow in ((0.0, False), (1.0, True)):
        c2w, _ = CameraPath(keys, tension=tension).sample(np.array([1 / 3, 1 / 3 + 0.01, 0.5, 0.51]))
        at_key, mid_segment = (np.linalg.norm(c2w[i + 1, :3, 3] - c2w[i, :3, 3]) for i in (0, 2))
        assert (at_key < 0.2 * mid_segment) == slow
    loop = CameraPath(keys, loop=True)
    assert loop.duration() == pytest.approx(4 * loop.default_transition_s)
    ends, _ = loop.sample(np.array([0.0, 1.0]))
    assert np.allclose(ends[0], ends[1], atol=1e-9)  # back where it started
    positions = loop.frame_positions(8)
    assert positions[-1] < 1.0 and np.allclose(np.diff(positions), 1 / 8)  # the last frame is not the first again


def test_same_poses_as_nerfviews_camera_path():
    """ovseg's path is nerfview's: its ``CameraPath`` (which needs a server to draw on) gives the same
    poses and FOVs for the same keyframes, tension, loop and transition overrides."""
    viser = pytest.importorskip("viser")
    render_panel = pytest.importorskip("nerfview.render_panel")
    keys = list(orbit_keys(5))
    keys[2] = Keyframe(keys[2].position, keys[2].wxyz, fov_deg=70.0, transition_s=1.3)
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        for loop, tension in ((False, 0.0), (True, 0.6)):
            ours = CameraPath(tuple(keys), default_fov_deg=45.0, default_transition_s=0.7, loop=loop, tension=tension)
            theirs = render_panel.CameraPath(server, None)
            theirs.loop, theirs.tension, theirs.default_transition_sec = loop, tension, 0.7
            theirs.default_fov = math.radians(45.0)
            for k in keys:
                theirs.add_camera(
                    render_panel.Keyframe(
                        np.array(k.position),
                        np.array(k.wxyz),
                        k.fov_deg is not None,
                        math.radians(k.fov_deg or 45.0),
                        False,
                        0.0,
                        4 / 3,
                        k.transition_s is not None,
                        k.transition_s,
                    )  # fmt: skip
                )
            theirs.update_spline()
            assert theirs.compute_duration() == pytest.approx(ours.duration())
            u = np.linspace(0, 1, 13)
            c2w, fov = ours.sample(u)
            for ui, m, f in zip(u, c2w, fov):
                pose, fov_rad = theirs.interpolate_pose_and_fov_rad(float(ui))
                assert np.allclose(pose.as_matrix(), m, atol=1e-9) and math.degrees(fov_rad) == pytest.approx(f)
    finally:
        server.stop()


def test_json_round_trip():
    keys = list(orbit_keys(5))
    keys[1] = Keyframe(keys[1].position, keys[1].wxyz, fov_deg=65.0, transition_s=0.5)
    path = CameraPath(tuple(keys), default_fov_deg=45.0, loop=True, tension=0.3, fps=12, width=320, height=200)
    data = camera_path_json(path)
    assert data["seconds"] == pytest.approx(path.duration()) and len(data["camera_path"]) == path.frame_count()
    assert data["render_width"] == 320 and data["is_cycle"] is True and data["smoothness_value"] == 0.3
    back = read_camera_path(dumps_camera_path(path), "p.json")
    assert back.path is not None and len(back.path.keyframes) == 5
    assert (back.width, back.height, back.fps, back.path.loop, back.path.tension) == (320, 200, 12.0, True, 0.3)
    for k, j in zip(path.keyframes, back.path.keyframes):
        assert np.allclose(k.c2w(), j.c2w(), atol=1e-9)
        assert (k.fov_deg, k.transition_s) == (j.fov_deg, j.transition_s)
    c2w, fov = path.sample(path.frame_positions())
    assert np.allclose(back.c2w, c2w, atol=1e-9) and np.allclose(back.fov_deg, fov)
    again, _ = back.path.sample(back.path.frame_positions())
    assert np.allclose(again, c2w, atol=1e-6)  # the rebuilt keyframes give the same path
    # positions scaled as nerfview's viewer saves them
    scaled = read_camera_path(dumps_camera_path(path, position_scale=10.0), "p.json", position_scale=10.0)
    assert np.allclose(scaled.c2w, c2w, atol=1e-9)


HAND_WRITTEN = """{
  "default_fov": 50.0,
  "default_transition_sec": 2.0,
  "keyframes": [
    {"matrix": [1, 0, 0, 0,  0, 1, 0, 0,  0, 0, 1, 4,  0, 0, 0, 1], "fov": 50.0, "aspect": 1.5,
     "override_transition_enabled": false, "override_transition_sec": null},
    {"matrix": [0, 0, 1, 4,  0, 1, 0, 0,  -1, 0, 0, 0,  0, 0, 0, 1], "fov": 30.0, "aspect": 1.5,
     "override_transition_enabled": true, "override_transition_sec": 1.0}
  ],
  "camera_type": "perspective",
  "render_height": 40,
  "render_width": 60,
  "fps": 4,
  "seconds": 1.0,
  "is_cycle": false,
  "smoothness_value": 0.0,
  "camera_path": [
    {"camera_to_world": [1, 0, 0, 0,  0, 1, 0, 0,  0, 0, 1, 4,  0, 0, 0, 1], "fov": 50.0, "aspect": 1.5},
    {"camera_to_world": [0.7071068, 0, 0.7071068, 2.828427,  0, 1, 0, 0,  -0.7071068, 0, 0.7071068, 2.828427,
                         0, 0, 0, 1], "fov": 40.0, "aspect": 1.5},
    {"camera_to_world": [0, 0, 1, 4,  0, 1, 0, 0,  -1, 0, 0, 0,  0, 0, 0, 1], "fov": 30.0, "aspect": 1.5},
    {"camera_to_world": [0, 0, 1, 4,  0, 1, 0, 0,  -1, 0, 0, 0,  0, 0, 0, 1], "fov": 30.0, "aspect": 1.5}
  ]
}"""
"""As nerfstudio's viewer writes one: OpenGL camera-to-world (y up, looking along -z), row-major;
the first camera sits at z = 4 looking at the origin, the third at x = 4 looking at it."""


def test_a_hand_written_nerfstudio_camera_path_loads():
    path = read_camera_path(HAND_WRITTEN, "camera_path.json")
    assert (path.width, path.height, path.fps, path.seconds) == (60, 40, 4.0, 1.0)
    cams = path.cameras()
    assert len(cams) == 4 and (cams[0].width, cams[0].height) == (60, 40)
    # OpenGL -> OpenCV: the origin is straight ahead (pixel centre, depth 4) of every camera
    for cam in cams:
        pixel, depth = cam.project(np.zeros((1, 3)))
        assert np.allclose(pixel[0], [30.0, 20.0], atol=1e-4) and depth[0] == pytest.approx(4.0, abs=1e-5)
    # y up in the file is y down in OpenCV: a point above the origin is above the image centre
    above, _ = cams[0].project(np.array([[0.0, 1.0, 0.0]]))
    assert above[0, 1] < 20.0
    assert [round(math.degrees(c.fov_y), 4) for c in cams[:3]] == [50.0, 40.0, 30.0]
    expected = Camera.look_at((4, 0, 0), (0, 0, 0), up=(0, 1, 0), width=60, height=40, fov_y_deg=30)
    assert np.allclose(cams[2].w2c, expected.w2c, atol=1e-9) and np.allclose(cams[2].K, expected.K)
    keys = path.path.keyframes
    assert keys[0].fov_deg is None and keys[1].fov_deg == 30.0 and keys[1].transition_s == 1.0
    assert path.path.duration() == pytest.approx(1.0)


def edited(**changes) -> str:
    data = json.loads(HAND_WRITTEN)
    for key, value in changes.items():
        target, name = data, key
        if "__" in key:  # camera_path__1__fov -> data["camera_path"][1]["fov"]
            *parts, name = key.split("__")
            for p in parts:
                target = target[int(p) if p.isdigit() else p]
        if value is KeyError:
            del target[name]
        else:
            target[name] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (edited(camera_path=KeyError), "key 'camera_path': missing"),
        (edited(camera_path=[]), "key 'camera_path': 0 frames"),
        (edited(render_height=KeyError), "key 'render_height': missing"),
        (edited(render_width=100000, render_height=100000), "too large"),
        (edited(render_width=0), "key 'render_width': 0 is outside"),
        (edited(seconds="two"), "key 'seconds': expected a finite number"),
        (
            edited(camera_path__1__camera_to_world=[1, 0, 0]),
            "key 'camera_path[1].camera_to_world': expected 16 numbers",
        ),
        (edited(camera_path__2__camera_to_world=[0] * 15 + [1]), "camera_path[2].camera_to_world': not a rigid"),
        (edited(camera_path__0__camera_to_world=[2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]), "not a rigid"),
        (edited(camera_path__3__camera_to_world=[1e400] * 16), "camera_path[3].camera_to_world': has values that"),
        (edited(camera_path__1__fov=0), "key 'camera_path[1].fov': 0 is outside"),
        (edited(camera_path__1__fov=KeyError), "key 'camera_path[1].fov': missing"),
        (edited(camera_type="fisheye"), "only 'perspective'"),
        (edited(keyframes__0__matrix="nope"), "key 'keyframes[0].matrix'"),
    ],
)
def test_bad_camera_path_files_are_one_line_errors_naming_the_key(text, message):
    with pytest.raises(UsageError) as info:
        read_camera_path(text, "trip.json")
    text_of = str(info.value)
    assert text_of.startswith("trip.json: ") and message in text_of and "\n" not in text_of


def test_a_file_with_too_many_frames_is_refused():
    data = json.loads(HAND_WRITTEN)
    data["camera_path"] = data["camera_path"][:1] * 3001
    with pytest.raises(UsageError, match="3001 frames"):
        read_camera_path(json.dumps(data), "long.json")


def test_keyframes_need_a_pose():
    with pytest.raises(UsageError, match="zero"):
        Keyframe((0, 0, 0), (0, 0, 0, 0))
    with pytest.raises(UsageError, match="finite"):
        Keyframe((0, float("nan"), 0), (1, 0, 0, 0))
    with pytest.raises(UsageError, match="at least 2 keyframes"):
        CameraPath(orbit_keys(4)[:1]).sample(np.zeros(1))
    with pytest.raises(UsageError, match="tension"):
        CameraPath(orbit_keys(4), tension=2.0)
