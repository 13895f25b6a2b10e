"""The Camera path panel in a real browser: keyframes from three camera poses, a nerfstudio
camera_path.json saved, reloaded and previewed, a relevancy MP4 rendered along it, and a long video
cancelled (the job stops and leaves no temporary file)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from demo_viewer import READY
from harness import (
    chromium_available,
    chromium_context,
    click_button,
    close_notifications,
    expect_download,
    free_port,
    select_dropdown,
    set_slider,
    set_text_input,
    skip_reason,
    wait_for_viser,
    wait_until,
)

from ovseg_app.viewer.server import Viewer
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.camera_path import read_camera_path
from ovseg_core.render import make_renderer

pytestmark = pytest.mark.skipif(not chromium_available(), reason=skip_reason())


@pytest.fixture
def viewer(demo, tmp_path):
    scene, fields, encoder = demo
    out = tmp_path / "out"
    session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=out)
    v = Viewer(session, host="127.0.0.1", port=free_port(), still_height=240)
    yield v
    v.stop()


def open_panel(viewer: Viewer):
    """(page, tab) with the Camera path folder open; the caller closes the browser context."""
    ctx = chromium_context(viewport={"width": 900, "height": 700})
    browser = ctx.__enter__()
    page = browser.pages[0]
    wait_for_viser(page, viewer.url, ready_text=READY)
    tab = wait_until(lambda: next(iter(viewer.tabs.values()), None), what="tab", page=page)
    wait_until(lambda: tab.frames > 0, what="first frame", timeout=60, page=page)
    close_notifications(page)
    page.get_by_text("Camera path", exact=True).first.click()
    return ctx, page, tab


def turn_camera(tab, degrees: float) -> np.ndarray:
    """Swing the tab's camera about the vertical axis through its look-at point; returns the new position."""
    cam = tab.client.camera
    target, eye = np.asarray(cam.look_at), np.asarray(cam.position)
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    new = target + rot @ (eye - target)
    cam.position = tuple(new)
    cam.look_at = tuple(target)
    return new


def set_number(page, tab_widget, label: str, value: float) -> None:
    set_text_input(page, label, f"{value:g}")
    wait_until(lambda: tab_widget.value == value, what=f"{label} = {value}", page=page)


def test_keyframes_save_reload_preview_and_a_relevancy_video(viewer, tmp_path):
    import imageio.v3 as iio

    ctx, page, tab = open_panel(viewer)
    try:
        panel = tab.panels.camera_path
        for i, turn in enumerate((0.0, 35.0, 35.0)):  # three poses, 35 degrees apart round the scene
            if turn:
                moved = turn_camera(tab, turn)
                wait_until(lambda m=moved: np.allclose(tab.client.camera.position, m, atol=1e-4), what="camera moved")
            click_button(page, "Add keyframe")
            wait_until(lambda n=i + 1: len(panel.keyframes) == n, what=f"keyframe {i + 1}", page=page)
        positions = np.array([k.position for k in panel.keyframes])
        assert min(np.linalg.norm(positions[1:] - positions[:-1], axis=1)) > 0.1  # three different poses
        set_number(page, panel.transition_in, "Transition (s)", 0.5)
        set_number(page, panel.fps_in, "FPS", 4)
        set_number(page, panel.width_in, "Video width", 64)
        set_number(page, panel.height_in, "Video height", 48)
        set_text_input(page, "Path name", "trip")
        wait_until(lambda: panel.name_in.value == "trip", what="path name", page=page)

        # save: downloaded, and kept in the output folder's camera_paths/ in nerfstudio's format
        saved = expect_download(page, lambda: click_button(page, "Save camera path"), dest_dir=tmp_path / "dl")
        data = json.loads(saved.read_text())
        assert saved.name == "trip.json" and len(data["keyframes"]) == 3 and len(data["camera_path"]) == 4
        assert (data["render_width"], data["render_height"], data["fps"], data["seconds"]) == (64, 48, 4, 1.0)
        on_disk = viewer.session.output_dir / "camera_paths" / "trip.json"
        assert json.loads(on_disk.read_text()) == data

        # reload: clear, pick it from the saved paths, load; the same keyframes and settings come back
        before = [k.c2w() for k in panel.keyframes]
        click_button(page, "Clear keyframes")
        wait_until(lambda: not panel.keyframes, what="cleared", page=page)
        set_number(page, panel.fps_in, "FPS", 12)
        select_dropdown(page, "Saved paths", "trip.json")
        click_button(page, "Load camera path")
        wait_until(lambda: len(panel.keyframes) == 3, what="path loaded", page=page)
        assert all(np.allclose(a, k.c2w(), atol=1e-9) for a, k in zip(before, panel.keyframes))
        wait_until(lambda: panel.fps_in.value == 4, what="the file's fps back in the panel", page=page)

        # preview: the slider puts this tab's camera on the path (halfway: the middle keyframe here)
        set_slider(page, "Preview", 0.5)
        middle = panel.keyframes[1].position
        wait_until(lambda: np.allclose(tab.client.camera.position, middle, atol=1e-3), what="camera on the path")

        # a relevancy video along the loaded path
        set_text_input(page, "Prompt", "mug")
        wait_until(lambda: tab.session.prompt.positives == ("mug",), what="prompt", page=page)
        assert tab.view_mode == "relevancy"
        video = expect_download(page, lambda: click_button(page, "Render video"), dest_dir=tmp_path / "dl", timeout=120)
        frames = np.stack(list(iio.imiter(video))).astype(float)
        assert frames.shape == (4, 48, 64, 3)
        assert min(np.abs(frames[i] - frames[i + 1]).mean() for i in range(3)) > 1  # the camera moved each frame
        file = read_camera_path(on_disk.read_bytes(), str(on_disk))
        expected = tab.session.render(file.cameras()[0], "relevancy").astype(float)
        assert np.abs(frames[0] - expected).mean() < 0.5 * np.abs(frames[0] - frames[-1]).mean()
    finally:
        ctx.__exit__(None, None, None)


def test_cancelling_a_long_video_stops_it_and_leaves_no_temp_file(viewer):
    ctx, page, tab = open_panel(viewer)
    try:
        panel = tab.panels.camera_path
        click_button(page, "Add keyframe")
        wait_until(lambda: len(panel.keyframes) == 1, what="keyframe 1", page=page)
        moved = turn_camera(tab, 40.0)
        wait_until(lambda: np.allclose(tab.client.camera.position, moved, atol=1e-4), what="camera moved")
        click_button(page, "Add keyframe")
        wait_until(lambda: len(panel.keyframes) == 2, what="keyframe 2", page=page)
        set_number(page, panel.transition_in, "Transition (s)", 60)
        set_number(page, panel.fps_in, "FPS", 40)  # 2400 frames: minutes of work
        set_number(page, panel.width_in, "Video width", 96)
        set_number(page, panel.height_in, "Video height", 64)
        out = viewer.session.output_dir
        click_button(page, "Render video")
        job = wait_until(lambda: panel.job, what="video job", page=page)
        wait_until(lambda: job.fraction > 0 and list(out.glob(".camera_path.mp4.*")), what="frames written", page=page)
        click_button(page, "Cancel video")
        wait_until(lambda: job.state == "cancelled", what="job cancelled", timeout=30, page=page)
        assert 0 < job.fraction < 0.5
        assert not list(out.rglob("*.mp4")) and not list(out.rglob(".camera_path.mp4.*"))
        wait_until(lambda: panel.cancel_btn.disabled and not panel.render_btn.disabled, what="buttons reset")
    finally:
        ctx.__exit__(None, None, None)
