"""A capture in COLMAP's y-down convention opens upright and framed in a real browser, the up axis
a user picks is remembered for the scene, and a dragged camera gets smaller frames while it
moves and a full-size one once it stops."""

from __future__ import annotations

import json

import numpy as np
import pytest
from harness import (
    chromium_available,
    chromium_context,
    close_notifications,
    free_port,
    select_dropdown,
    skip_reason,
    wait_for_viser,
    wait_until,
)

from ovseg_app.demo import load_demo_scene
from ovseg_app.viewer.scene_orientation import MEMORY_FILE
from ovseg_app.viewer.server import Viewer
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.orientation import rotate_scene, rotation_to
from ovseg_core.render import make_renderer

pytestmark = pytest.mark.skipif(not chromium_available(), reason=skip_reason())

VIEWPORT = {"width": 1000, "height": 640}
READY = "Clear selection"


def start(scene, out) -> Viewer:  # noqa: ANN001
    return Viewer(ViewerSession(scene, make_renderer("cpu"), output_dir=out), port=free_port(), still_height=720)


def open_settled(ctx, viewer: Viewer):  # noqa: ANN001, ANN201
    """A page on ``viewer`` and its tab, once the tab's last frame is full size and still."""
    page = ctx.new_page()
    known = set(viewer.tabs)
    wait_for_viser(page, viewer.url, ready_text=READY)
    tab = wait_until(lambda: next((t for i, t in viewer.tabs.items() if i not in known), None), what="new tab")
    wait_until(lambda: still_frame(tab), what="full-size frame", timeout=60, page=page)
    close_notifications(page)
    return page, tab


def still_frame(tab) -> bool:  # noqa: ANN001
    cam, last = tab.camera(tab.frame_height(moving=False)), tab.last_camera
    return bool(last is not None and cam is not None and last.height == cam.height and np.allclose(last.w2c, cam.w2c))


def object_rows(rgb: np.ndarray) -> dict[str, float]:
    """Mean image row of the demo's red mug, yellow ball and (brown) table pixels in a screenshot."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    masks = {
        "mug": (r > 150) & (g < 70) & (b < 70),
        "ball": (r > 170) & (g > 140) & (b < 80),
        "table": (r > 90) & (r < 190) & (g > 50) & (g < 130) & (b < 90) & (r - g > 25) & (g - b > 15),
    }
    rows = np.arange(rgb.shape[0])[:, None]
    out = {}
    for name, m in masks.items():
        assert m.sum() > 30, f"no {name} in the screenshot"
        out[name] = float((rows * m).sum() / m.sum())
    return out


@pytest.fixture(scope="module")
def browser():
    with chromium_context(viewport=VIEWPORT) as ctx:
        yield ctx


@pytest.mark.parametrize("convention", ["z-up", "y-down"])
def test_capture_opens_upright_and_framed(browser, tmp_path, artifact_dir, convention):
    from harness import canvas_pixels

    scene = load_demo_scene()
    if convention == "y-down":  # the demo as an INRIA/COLMAP capture would store it
        scene = rotate_scene(scene, rotation_to((0, 0, 1), (0, -1, 0)))
    viewer = start(scene, tmp_path)
    try:
        assert viewer.orientation.axis == ("+z" if convention == "z-up" else "-y")
        page, tab = open_settled(browser, viewer)
        rgb = canvas_pixels(page)
        from PIL import Image

        Image.fromarray(rgb).save(artifact_dir / f"{convention}.png")
        rows = object_rows(rgb)
        assert rows["mug"] < rows["table"] and rows["ball"] < rows["table"], rows  # objects stand on the table
        lit = np.flatnonzero((rgb.astype(int).sum(-1) > 60).any(0))
        assert lit.max() - lit.min() > 0.4 * rgb.shape[1]  # framed: the scene spans the view, not a blob in it
        page.close()
    finally:
        viewer.stop()


def test_chosen_up_axis_is_remembered_for_the_scene(browser, tmp_path):
    scene = rotate_scene(load_demo_scene(), rotation_to((0, 0, 1), (0, -1, 0)))
    viewer = start(scene, tmp_path)
    try:
        page, _ = open_settled(browser, viewer)
        page.get_by_text("Display", exact=True).first.click()  # open the folder
        select_dropdown(page, "Up axis", "+z")
        wait_until(lambda: viewer.orientation.axis == "+z", what="up axis chosen", page=page)
        page.close()
    finally:
        viewer.stop()
    assert json.loads((tmp_path / MEMORY_FILE).read_text()) == {scene.fingerprint(): "+z"}
    again = start(scene, tmp_path)  # a new viewer on the same scene
    try:
        assert again.orientation.axis == "+z"
    finally:
        again.stop()


DRAG_JS = """async (ms) => {
  const canvas = document.querySelector("canvas[data-engine]");
  const box = canvas.getBoundingClientRect();
  const cx = box.left + box.width / 2, cy = box.top + box.height / 2;
  const fire = (type, x) => canvas.dispatchEvent(new PointerEvent(type, {clientX: x, clientY: cy,
    pointerId: 1, pointerType: "mouse", button: 0, buttons: type === "pointerup" ? 0 : 1, bubbles: true,
    isPrimary: true}));
  fire("pointerdown", cx);
  for (let i = 0, end = performance.now() + ms; performance.now() < end && i < 10000; i++) {
    fire("pointermove", cx + (i % 120) * 2);
    await new Promise((r) => setTimeout(r, 16));
  }
  fire("pointerup", cx);
}"""


def test_dragged_camera_gets_small_frames_then_a_full_size_one(browser, tmp_path):
    viewer = start(load_demo_scene(), tmp_path)
    try:
        page, tab = open_settled(browser, viewer)
        still_height, still_width = tab.last_camera.height, tab.last_camera.width
        tab.profile.clear()
        frames, updates = tab.frames, tab.camera_updates
        page.evaluate(DRAG_JS, 1500)
        assert tab.camera_updates > updates and tab.frames > frames  # the drag moved the camera and got frames
        moving = tab.profile.summary(moving=True)
        assert moving["frames"] >= 1
        assert moving["pixels_median"] <= 0.5**2 * still_height * still_width * 1.02  # at most half the height
        wait_until(lambda: still_frame(tab), what="full-size frame after the drag", timeout=30, page=page)
        assert tab.last_camera.height == still_height
        page.close()
    finally:
        viewer.stop()
