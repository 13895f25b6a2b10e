"""``ovseg render --camera-path``: a hand-written nerfstudio camera_path.json rendered to MP4, in the
viewer's relevancy mode, frame for frame the cameras the file describes (OpenGL camera-to-world,
vertical FOV in degrees), and bad files refused in one line naming the file and key."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest

from ovseg_app import render_cli
from ovseg_core.camera import Camera

TARGET, RADIUS, HEIGHT = np.array([0.0, 0.0, 0.5]), 2.5, 1.5
W, H, FPS, SECONDS = 64, 48, 6, 1.0


def eye(i: int) -> np.ndarray:
    a = 2 * math.pi * i / int(FPS * SECONDS)
    return np.array([RADIUS * math.cos(a), RADIUS * math.sin(a), HEIGHT])


def opengl_c2w(position: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world as nerfstudio stores it: x right, y up, looking along -z."""
    back = (position - target) / np.linalg.norm(position - target)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, position
    return m


def write_path(path, **changes) -> None:
    frames = [
        {"camera_to_world": opengl_c2w(eye(i), TARGET).reshape(-1).tolist(), "fov": 50.0, "aspect": W / H}
        for i in range(int(FPS * SECONDS))
    ]
    data = {"render_width": W, "render_height": H, "fps": FPS, "seconds": SECONDS, "camera_path": frames}
    path.write_text(json.dumps({**data, **changes}))


def test_a_camera_path_renders_the_prompts_relevancy_along_the_path(tmp_path, capsys):
    from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
    from ovseg_app.viewer.session import ViewerSession
    from ovseg_core.render import make_renderer

    write_path(tmp_path / "camera_path.json")
    out = tmp_path / "mug.mp4"
    args = ["--camera-path", str(tmp_path / "camera_path.json"), "--prompt", "mug", "--mode", "relevancy"]
    assert render_cli.main([*args, "--output", str(out), "--backend", "cpu"]) == 0, capsys.readouterr().err
    frames = np.stack(list(iio.imiter(out))).astype(float)
    assert frames.shape == (int(SECONDS * FPS), H, W, 3)
    assert min(np.abs(frames[i] - frames[i + 1]).mean() for i in range(len(frames) - 1)) > 2  # the camera moves

    # each frame is the viewer's relevancy frame for the camera the file describes, built here from the
    # same eye and target with OpenCV's look-at (not from the file), and differs from its neighbour's
    scene, fields, encoder, _ = load_session_inputs(ViewCommand())
    session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder)
    session.set_prompt(positives=("mug",))
    for i in (0, 2):
        cam = Camera.look_at(eye(i), TARGET, (0, 0, 1), width=W, height=H, fov_y_deg=50.0)
        expected = session.render(cam, "relevancy").astype(float)
        neighbour = session.render(Camera.look_at(eye(i + 1), TARGET, width=W, height=H), "relevancy").astype(float)
        assert np.abs(frames[i] - expected).mean() < 0.5 * np.abs(frames[i] - neighbour).mean()
        recoloured = np.abs(expected - session.render(cam, "rgb")).max(axis=2) > 40
        assert recoloured.sum() >= 5, recoloured.sum()  # the mug in relevancy colours, not plain colour


@pytest.mark.parametrize(
    ("changes", "extra", "message"),
    [
        ({"camera_path": []}, [], "key 'camera_path': 0 frames"),
        ({"fps": None}, [], "key 'fps': expected a finite number"),
        ({"render_height": 10**6}, [], "too large"),
        ({}, ["--view", "1"], "no --view"),
        ({}, ["--mode", "relevancy"], "give --prompt"),
    ],
)
def test_bad_camera_paths_are_one_line_errors(tmp_path, capsys, changes, extra, message):
    write_path(tmp_path / "p.json", **changes)
    args = ["--camera-path", str(tmp_path / "p.json"), "--output", str(tmp_path / "o.mp4"), *extra]
    assert render_cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ovseg-render: error:") and message in err and "\n" not in err, err
    assert not (tmp_path / "o.mp4").exists()
    if changes:
        assert "p.json" in err


def test_camera_path_needs_a_video_output(tmp_path, capsys):
    write_path(tmp_path / "p.json")
    assert render_cli.main(["--camera-path", str(tmp_path / "p.json"), "--output", str(tmp_path / "o.png")]) == 2
    assert ".mp4" in capsys.readouterr().err
