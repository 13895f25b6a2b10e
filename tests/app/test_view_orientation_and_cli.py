"""The viewer's remembered up axis per scene, the moving-frame budget, and ``ovseg-view``'s port,
output folder and help text."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from ovseg_app.demo import load_demo_scene
from ovseg_app.viewer.cli import ViewCommand, check_port_free, default_output_dir
from ovseg_app.viewer.frame_budget import MAX_MOVING_SCALE, MIN_MOVING_SCALE, FrameProfile, MovingScale, frame_unsent
from ovseg_app.viewer.scene_orientation import MEMORY_FILE, SceneOrientation
from ovseg_core.orientation import rotate_scene, rotation_to
from ovseg_core.synthetic import random_scene


def test_up_axis_is_detected_then_remembered_per_scene(tmp_path):
    demo = load_demo_scene()
    y_down = rotate_scene(demo, rotation_to((0, 0, 1), (0, -1, 0)))
    assert SceneOrientation(demo, tmp_path).axis == "+z"
    first = SceneOrientation(y_down, tmp_path)
    assert (first.axis, first.detected.source) == ("-y", "geometry")
    first.choose("+y")  # the user knows better
    assert SceneOrientation(y_down, tmp_path).axis == "+y"  # next viewer on this scene
    assert SceneOrientation(demo, tmp_path).axis == "+z"  # other scenes keep their own
    stored = json.loads((tmp_path / MEMORY_FILE).read_text())
    assert stored == {y_down.fingerprint(): "+y"}
    with pytest.raises(ValueError, match="up axis"):
        first.choose("sideways")


def test_a_damaged_memory_file_is_ignored(tmp_path):
    (tmp_path / MEMORY_FILE).write_text("{not json")
    orientation = SceneOrientation(load_demo_scene(), tmp_path)
    assert orientation.axis == "+z"
    orientation.choose("-y")  # and replaced by a good one
    assert SceneOrientation(load_demo_scene(), tmp_path).axis == "-y"


def test_framing_follows_the_chosen_axis(tmp_path):
    orientation = SceneOrientation(load_demo_scene(), None)  # no output folder: nothing remembered
    up = orientation.framing("+z")
    down = orientation.framing("-z")
    assert up.up[2] == 1 and down.up[2] == -1
    assert up.position[2] > up.look_at[2] and down.position[2] < down.look_at[2]  # seen from above either way


def test_cameras_of_an_unreadable_dataset_are_skipped(tmp_path):
    orientation = SceneOrientation(random_scene(200, seed=1), None, dataset=tmp_path / "missing")
    assert orientation.cameras == [] and orientation.detected.source != "cameras"


def test_moving_frames_shrink_when_slow_and_grow_back_within_bounds():
    scale = MovingScale(target_s=0.03)
    for _ in range(50):
        scale.update(0.2)
    assert scale.scale == MIN_MOVING_SCALE
    assert scale.height(720, 32) == int(720 * MIN_MOVING_SCALE)
    for _ in range(100):
        scale.update(0.005)
    assert scale.scale == MAX_MOVING_SCALE
    scale.update(float("nan"))  # a bad measurement changes nothing
    assert scale.scale == MAX_MOVING_SCALE


def test_frame_profile_medians():
    profile = FrameProfile()
    for ms in (10, 20, 30):
        profile.add(True, wait=0.001, render=ms / 1000, encode_send=0.001, total=ms / 1000 + 0.002, pixels=100.0)
    summary = profile.summary(moving=True)
    assert summary["render_ms"] == 20 and summary["frames"] == 3 and summary["pixels_median"] == 100
    assert profile.summary(moving=False) == {"frames": 0}


def test_frame_unsent_is_false_for_a_client_without_viser_internals():
    assert frame_unsent(object()) is False


def test_port_in_use_is_refused_in_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=f"port {port} on 127.0.0.1 is in use"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", 0)  # any free port: nothing to check


def test_ovseg_view_exits_with_one_line_when_its_port_is_taken():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "ovseg_app.viewer.cli", "--port", str(port)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"ovseg-view: error: port {port} on 127.0.0.1 is in use (Address already in use); choose another with --port"
    )


def test_default_output_folder_is_per_user_not_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_output_dir() == tmp_path / "data" / "ovseg"
    assert ViewCommand().output_dir == tmp_path / "data" / "ovseg"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_output_dir().parts[-3:] == (".local", "share", "ovseg")


def test_help_keeps_each_options_text_whole():
    """tyro starts a new help line at each continuation line of a field docstring: with a terminal
    wide enough for every option's text, each takes one row (after its flag, or the row below a
    long flag)."""
    env = {**os.environ, "COLUMNS": "400"}
    proc = subprocess.run(
        [sys.executable, "-m", "ovseg_app.viewer.cli", "--help"], capture_output=True, text=True, timeout=120, env=env
    )
    panel = proc.stdout.split("─ options ")[1].split("╰")[0]
    rows = [line.strip("│ ").rstrip() for line in panel.splitlines()[1:]]
    flags = [row.startswith(("-", "[")) for row in rows]
    for i, row in enumerate(rows):
        assert flags[i] or (i > 0 and flags[i - 1] and "  " not in rows[i - 1].strip()), f"help row cut: {row!r}"
    assert any("--port INT" in row and "exactly" in row for row in rows)


def test_callback_input_errors_are_logged_in_one_line_and_bugs_with_their_traceback(tmp_path, caplog):
    import logging

    from ovseg_app.viewer.server import Viewer
    from ovseg_app.viewer.session import ViewerSession
    from ovseg_core.errors import UsageError
    from ovseg_core.render import make_renderer

    viewer = Viewer(ViewerSession(random_scene(50, seed=2), make_renderer("cpu"), output_dir=tmp_path), port=0)
    try:

        def bad_input() -> None:
            raise UsageError("no such prompt file: x.txt")

        def bug() -> None:
            raise RuntimeError("broken")

        with caplog.at_level(logging.ERROR, logger="ovseg.viewer"):
            viewer.guarded(bad_input)()
            viewer.guarded(bug)()
        first, second = (r.getMessage() for r in caplog.records[-2:])
        assert first == "error in bad_input: no such prompt file: x.txt"
        assert second.startswith("error in bug:\nTraceback") and "RuntimeError: broken" in second
        assert viewer.errors[-2:] == ["UsageError: no such prompt file: x.txt", "RuntimeError: broken"]
    finally:
        viewer.stop()
