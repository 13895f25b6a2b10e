"""The viewer's per-tab tools in a real browser (a fresh server and Chromium for each test, so no
test depends on another): modifier clicks, box select and undo; hide and undo; two tabs with their
own prompt and view; "no match"; frames that follow the window; hostile client values that hurt
nobody else."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from demo_viewer import READY
from harness import (
    chromium_available,
    chromium_context,
    click_button,
    click_canvas,
    click_label,
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
from plyfile import PlyData

from ovseg_app.viewer.server import Viewer
from ovseg_app.viewer.session import ViewerSession
from ovseg_app.viewer.tab import MAX_FRAME_PIXELS
from ovseg_core.render import make_renderer

pytestmark = pytest.mark.skipif(not chromium_available(), reason=skip_reason())

VIEWPORT = {"width": 960, "height": 400}
MUG, BALL = 1, 2  # DEMO_OBJECTS indices


@pytest.fixture
def viewer(demo, tmp_path):
    scene, fields, encoder = demo
    session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=tmp_path)
    v = Viewer(session, host="127.0.0.1", port=free_port(), still_height=720)
    yield v
    v.stop()


@pytest.fixture
def browser():
    with chromium_context(viewport=VIEWPORT) as ctx:
        yield ctx


def open_tab(browser, viewer: Viewer, page=None):
    """A page showing the viewer, and its server-side Tab once it has a frame."""
    page = page or browser.new_page()
    known = set(viewer.tabs)
    wait_for_viser(page, viewer.url, ready_text=READY)
    tab = wait_until(lambda: next((t for i, t in viewer.tabs.items() if i not in known), None), what="new tab")
    wait_until(lambda: settled(tab), what="first full-size frame", timeout=60, page=page)
    close_notifications(page)
    return page, tab


def settled(tab) -> bool:
    """The tab's last frame is for its current camera at full size, and shows its current state."""
    cam = tab.camera(tab.frame_height(moving=False))
    last = tab.last_camera
    return bool(
        fresh(tab) and last is not None and cam is not None and last.height == cam.height
        and np.allclose(last.w2c, cam.w2c, atol=1e-6)
    )  # fmt: skip


def first_tab(browser, viewer: Viewer):
    """The browser's first page, opened on the viewer, and its tab."""
    return open_tab(browser, viewer, browser.pages[0])


def fresh(tab) -> bool:
    return tab.rendered_key is not None and tab.rendered_key[-2:] == (tab.version, tab.viewer.version)


def object_pixels(tab, k: int) -> np.ndarray:
    scene, cam = tab.session.base_scene, tab.last_camera
    onehot = F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), 5).float()
    return make_renderer("cpu").render(scene, cam, features=onehot).features[0, ..., k].numpy() > 0.5


def centre_of(mask: np.ndarray, cam) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return (np.median(xs) + 0.5) / cam.width, (np.median(ys) + 0.5) / cam.height


def test_shift_adds_ctrl_removes_box_selects_and_undo(viewer, browser):
    page, tab = first_tab(browser, viewer)
    truth = tab.session.base_scene.extras["object_id"]
    cam = tab.last_camera
    mug, ball = object_pixels(tab, MUG), object_pixels(tab, BALL)
    assert mug.sum() > 50 and ball.sum() > 50

    def objects() -> set[int]:  # the objects mostly selected (a click may take a few table Gaussians too)
        sel = tab.session.selection
        return {k for k in range(5) if sel[truth == k].mean() > 0.5}

    click_canvas(page, *centre_of(mug, cam))
    wait_until(lambda: objects() == {MUG}, what="plain click selects the mug", page=page)
    click_canvas(page, *centre_of(ball, cam), modifiers=("Shift",))
    wait_until(lambda: objects() == {MUG, BALL}, what="shift-click adds the ball", page=page)
    click_canvas(page, *centre_of(mug, cam), modifiers=("Control",))
    wait_until(lambda: objects() == {BALL}, what="ctrl-click removes the mug", page=page)
    click_button(page, "Undo selection")
    wait_until(lambda: objects() == {MUG, BALL}, what="undo brings the mug back", page=page)
    click_button(page, "Redo selection")
    wait_until(lambda: objects() == {BALL}, what="redo removes it again", page=page)

    # box select: tick the tool, drag a box around the mug
    click_label(page, "Box select (drag)")
    wait_until(lambda: tab.panels.selection.box_in.value is True, what="box tool on", page=page)
    ys, xs = np.nonzero(mug)
    box = page.locator("canvas[data-engine]").bounding_box()
    sx, sy = box["width"] / cam.width, box["height"] / cam.height
    page.mouse.move(box["x"] + (xs.min() - 2) * sx, box["y"] + (ys.min() - 2) * sy)
    page.mouse.down()
    for t in np.linspace(0, 1, 6)[1:]:
        page.mouse.move(
            box["x"] + (xs.min() - 2 + t * (xs.max() - xs.min() + 4)) * sx,
            box["y"] + (ys.min() - 2 + t * (ys.max() - ys.min() + 4)) * sy,
        )
    page.mouse.up()
    wait_until(lambda: objects() == {MUG}, what="box selects the mug", page=page)
    selected = tab.session.selection
    assert (truth[selected] == MUG).mean() > 0.5 and selected[truth == MUG].mean() > 0.9
    click_label(page, "Box select (drag)")
    wait_until(lambda: tab.panels.selection.box_in.value is False, what="box tool off", page=page)


def test_hide_then_undo_brings_the_selection_back_and_redo_hides_again(viewer, browser):
    page, tab = first_tab(browser, viewer)
    truth = tab.session.base_scene.extras["object_id"]
    cam = tab.last_camera
    mug = object_pixels(tab, MUG)
    select_dropdown(page, "View", "rgb")
    click_canvas(page, *centre_of(mug, cam))
    wait_until(lambda: tab.session.selection[truth == MUG].mean() > 0.9, what="mug selected", page=page)
    selected = tab.session.selection.copy()
    n = f"{int(selected.sum()):,}"
    counts = tab.panels.prompt.stats_md  # at the top of the panel
    wait_until(lambda: f"**Selection:** {n} Gaussians" in counts.content, what="count at the top", page=page)
    wait_until(lambda: settled(tab), what="frame with the selection", timeout=30, page=page)
    shown = tab.last_frame.astype(int)
    click_button(page, "Hide selected")
    wait_until(lambda: f"0 Gaussians, {n} hidden" in counts.content, what="mug hidden", page=page)
    wait_until(lambda: settled(tab), what="frame without the mug", timeout=30, page=page)
    assert np.abs(tab.last_frame.astype(int) - shown).sum(-1)[mug].mean() > 30  # the mug is gone
    click_button(page, "Undo selection")
    wait_until(lambda: counts.content.endswith(f"**Selection:** {n} Gaussians"), what="undo shows it", page=page)
    assert np.array_equal(tab.session.selection, selected) and not tab.session.hidden.any()
    path = expect_download(page, lambda: click_button(page, "Download PLY"), dest_dir=viewer.session.output_dir)
    assert PlyData.read(str(path))["vertex"].count == selected.sum()  # the export has it too
    click_button(page, "Redo selection")
    wait_until(lambda: f"0 Gaussians, {n} hidden" in counts.content, what="redo hides it again", page=page)


def test_two_tabs_keep_their_own_prompt_and_view_and_no_match_is_said(viewer, browser):
    page1, tab1 = first_tab(browser, viewer)
    page2, tab2 = open_tab(browser, viewer)
    set_text_input(page1, "Prompt", "red mug")
    wait_until(lambda: tab1.session.prompt.positives == ("red mug",), what="prompt in tab 1", page=page1)
    page2.bring_to_front()
    set_text_input(page2, "Prompt", "submarine")
    select_dropdown(page2, "View", "heatmap")
    wait_until(
        lambda: tab2.session.prompt.positives == ("submarine",) and tab2.view_mode == "heatmap",
        what="prompt and view in tab 2",
        page=page2,
    )
    assert tab1.session.prompt.positives == ("red mug",) and tab1.view_mode == "relevancy"
    wait_until(lambda: page2.get_by_text("No match", exact=False).count() >= 1, what="no match shown", page=page2)
    assert page1.get_by_text("No match", exact=False).count() == 0
    wait_until(lambda: fresh(tab1) and fresh(tab2), what="both tabs re-rendered", timeout=60, page=page2)
    mug = object_pixels(tab1, MUG)
    f1 = tab1.last_frame.astype(int)
    plain = tab1.session.render(tab1.last_camera, "rgb").astype(int)
    assert np.abs(f1 - plain).sum(-1)[mug].mean() > 30  # tab 1's mug is highlighted ...
    assert tab2.last_frame.astype(int).mean() < 0.6 * plain.mean()  # ... tab 2 shows a dark heat map
    page2.close()
    wait_until(lambda: tab2.client.client_id not in viewer.tabs, what="closed tab released", page=page1)
    assert not tab2.alive and tab2.last_frame is None


def test_frames_follow_the_window_size(viewer, browser):
    page, tab = first_tab(browser, viewer)
    wait_until(lambda: fresh(tab) and tab.last_camera.height == VIEWPORT["height"], what="full-size frame", page=page)
    assert abs(tab.last_camera.width - VIEWPORT["width"]) <= 2
    page.set_viewport_size({"width": 720, "height": 300})
    wait_until(
        lambda: tab.last_camera.height == 300 and abs(tab.last_camera.width - 720) <= 2 and fresh(tab),
        what="frame at the new window size",
        timeout=30,
        page=page,
    )
    page.get_by_text("Display", exact=True).first.click()  # open the folder
    set_slider(page, "Max height", 200)
    wait_until(lambda: tab.last_camera.height == 200, what="frame capped by Max height", timeout=30, page=page)


def _inject(viewer: Viewer, tab, message) -> None:
    """Deliver ``message`` as if ``tab``'s browser had sent it (viser's own dispatch path)."""
    conn = tab.client._websock_connection
    server_conn = viewer.server._websock_server
    loop = viewer.server._event_loop

    async def deliver() -> None:
        await server_conn._handle_incoming_message(tab.client.client_id, message)
        await conn._handle_incoming_message(tab.client.client_id, message)

    asyncio.run_coroutine_threadsafe(deliver(), loop).result(10)


def test_hostile_client_values_hurt_nobody(viewer, browser):
    from viser import _messages

    bystander_page, bystander = first_tab(browser, viewer)
    page, hostile = open_tab(browser, viewer)
    errors_before = len(viewer.errors)
    cam = hostile.client.camera
    base = dict(
        wxyz=tuple(cam.wxyz), position=tuple(cam.position), fov=cam.fov, near=0.01, far=1000.0,
        look_at=tuple(cam.look_at), up_direction=tuple(cam.up_direction),
    )  # fmt: skip
    # a canvas 300x wider than high, then a huge one, then a non-finite camera
    width = hostile.last_camera.width
    _inject(viewer, hostile, _messages.ViewerCameraMessage(**base, image_height=400, image_width=120_000))
    # a frame for the wide canvas (wider than the window's), clamped to the widest aspect allowed
    wait_until(lambda: hostile.last_camera.width > width + 2, what="frame for the wide canvas", page=page)
    assert hostile.last_camera.width <= 4 * hostile.last_camera.height
    _inject(viewer, hostile, _messages.ViewerCameraMessage(**base, image_height=100_000, image_width=100_000))
    # a frame for the square canvas, at most as high as the tab's maximum
    wait_until(lambda: hostile.last_camera.width == hostile.last_camera.height, what="square frame", page=page)
    assert hostile.last_camera.height <= hostile.max_height
    hostile.max_height = 2160  # as high as the panel allows, with the widest canvas
    _inject(viewer, hostile, _messages.ViewerCameraMessage(**base, image_height=2160, image_width=100_000))
    wait_until(lambda: hostile.last_camera.width > 2 * hostile.last_camera.height, what="wide frame", page=page)
    assert hostile.last_camera.width * hostile.last_camera.height <= MAX_FRAME_PIXELS
    nan = dict(base, position=(float("nan"), 0.0, 0.0))
    _inject(viewer, hostile, _messages.ViewerCameraMessage(**nan, image_height=400, image_width=640))
    # GUI values no widget would send: a 1e300 step count, a view mode not in the dropdown
    steps = hostile.panels.training.steps_in
    _inject(viewer, hostile, _messages.GuiUpdateMessage(steps._impl.uuid, {"value": 1e300}))
    view = hostile.panels.prompt.view_in
    _inject(viewer, hostile, _messages.GuiUpdateMessage(view._impl.uuid, {"value": "x-ray"}))
    wait_until(lambda: view.value == "relevancy", what="bad view mode reset", page=page)
    wait_until(lambda: steps.value == 1_000_000, what="steps clamped to the widget's max", page=page)
    assert hostile.view_mode == "relevancy"
    page.wait_for_timeout(1500)  # the non-finite camera must not flood anyone with errors
    assert len(viewer.errors) - errors_before <= 1, viewer.errors[errors_before:]
    # the bystander keeps getting frames, and a new tab still connects and gets its own
    frames = bystander.frames
    bystander.client.camera.position = tuple(np.asarray(bystander.client.camera.position) * 1.05)
    wait_until(lambda: bystander.frames > frames, what="bystander frame", timeout=30, page=bystander_page)
    late_page, late = open_tab(browser, viewer)
    assert late.frames > 0
    late_page.close()
    page.close()
    close_notifications(bystander_page)


def test_browser_display_recolours_the_splats_in_place(viewer, browser):
    page, tab = first_tab(browser, viewer)
    page.get_by_text("Display", exact=True).first.click()  # open the folder
    select_dropdown(page, "Display", "browser")
    wait_until(lambda: tab.splats is not None, what="splats sent to the browser", page=page)
    handle = tab.splats
    truth = tab.session.base_scene.extras["object_id"]
    select_dropdown(page, "View", "relevancy")
    set_text_input(page, "Prompt", "yellow ball")
    wait_until(lambda: tab.session.prompt.positives == ("yellow ball",), what="prompt", page=page)
    wait_until(lambda: fresh_colours(tab, truth), what="recoloured", page=page)
    assert tab.splats is handle  # the same scene node: only its colours were sent again
    click_button(page, "Select prompt result")
    click_button(page, "Hide selected")  # hidden splats turn transparent, in place as well
    wait_until(lambda: (tab.splats.opacities[truth == BALL] == 0).all(), what="ball hidden", page=page)
    assert tab.splats is handle and (tab.splats.opacities[truth != BALL] > 0).mean() > 0.99
    select_dropdown(page, "Display", "server")
    wait_until(lambda: tab.splats is None and fresh(tab), what="back to server frames", timeout=30, page=page)


def fresh_colours(tab, truth) -> bool:
    base = 255 * tab.session.gaussian_colors("rgb")
    changed = np.abs(tab.splats.rgbs.astype(float) - base).sum(1) > 0.05 * 255
    return changed[truth == BALL].mean() > 0.7 and changed[truth != BALL].mean() < 0.05


def test_screenshot_at_a_chosen_size(viewer, browser, tmp_path):
    import imageio.v3 as iio
    from harness import expect_download

    page, tab = first_tab(browser, viewer)
    if (
        page.get_by_text("Screenshot width", exact=True).count() == 0
        or not page.get_by_text("Screenshot width", exact=True).first.is_visible()
    ):
        page.get_by_text("Display", exact=True).first.click()
    select_dropdown(page, "View", "rgb")
    set_text_input(page, "Screenshot width", "320")
    set_text_input(page, "Screenshot height", "200")
    display = tab.panels.display
    wait_until(lambda: display.shot_w_in.value == 320 and display.shot_h_in.value == 200, what="size set", page=page)
    path = expect_download(page, lambda: click_button(page, "Download screenshot PNG"), dest_dir=tmp_path)
    image = iio.imread(path)
    assert path.name == "rgb_320x200.png" and image.shape[:2] == (200, 320) and image.std() > 5
