"""The viewer in a real browser: demo scene, a typed prompt, a click, an export, a training run."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import (
    canvas_pixels,
    click_button,
    click_canvas,
    click_label,
    close_notifications,
    expect_download,
    free_port,
    screenshot,
    select_dropdown,
    set_slider,
    set_text_input,
    wait_for_viser,
    wait_until,
)
from PIL import Image
from plyfile import PlyData

from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
from ovseg_app.viewer.server import Viewer
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.camera import orbit_cameras
from ovseg_core.io import load_scene
from ovseg_core.render import make_renderer
from ovseg_core.render.frames import DIM
from ovseg_core.synthetic import write_capture

MUG = 1  # DEMO_OBJECTS index


@pytest.fixture
def viewer(tmp_path):
    scene, fields, encoder, note = load_session_inputs(ViewCommand())
    assert fields is not None, f"demo fields missing: {note}"
    session = ViewerSession(
        scene,
        make_renderer("cpu"),
        fields=fields,
        text_encoder=encoder,
        output_dir=tmp_path / "exports",
    )
    v = Viewer(session, host="127.0.0.1", port=free_port(), still_height=300)
    yield v
    v.stop()


READY = "Clear selection"


def first_tab(viewer: Viewer):
    return next(iter(viewer.tabs.values()))


def settled(tab) -> bool:
    """The tab's last frame shows its current state, for its current camera at full size."""
    cam, last = tab.camera(tab.frame_height(moving=False)), tab.last_camera
    return bool(
        tab.rendered_key is not None and tab.rendered_key[-2:] == (tab.version, tab.viewer.version)
        and last is not None and cam is not None and last.height == cam.height
        and np.allclose(last.w2c, cam.w2c, atol=1e-6)
    )  # fmt: skip


def shown(page, tab) -> tuple[np.ndarray, object]:
    """Once the tab's frame has settled and the browser shows it: the canvas resized to that
    frame (int), and the frame's camera."""
    wait_until(lambda: settled(tab), what="settled frame", timeout=30, page=page)
    cam = tab.last_camera

    def canvas() -> np.ndarray | None:
        img = Image.fromarray(canvas_pixels(page)).resize((cam.width, cam.height), Image.BILINEAR)
        img = np.asarray(img).astype(int)
        frame = tab.last_frame
        matches = frame is not None and np.median(np.abs(img - frame.astype(int)).sum(-1)) < 20
        return img if matches else None

    return wait_until(canvas, what="the frame shown in the browser", timeout=30, page=page), cam


def open_viewer(page, viewer: Viewer):
    wait_for_viser(page, viewer.url, ready_text=READY)
    tab = wait_until(lambda: next(iter(viewer.tabs.values()), None), what="tab", page=page)
    wait_until(lambda: settled(tab), what="first full-size frame", timeout=60, page=page)
    close_notifications(page)
    return tab


def object_pixels(tab, cam, k: int) -> np.ndarray:
    scene = tab.session.base_scene
    onehot = F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), 5).float()
    return make_renderer("cpu").render(scene, cam, features=onehot).features[0, ..., k].numpy() > 0.5


def test_prompt_click_export_and_training_in_the_browser(viewer, chromium, artifact_dir, tmp_path):
    page = chromium.pages[0]
    tab = open_viewer(page, viewer)
    before, cam = shown(page, tab)
    screenshot(page, artifact_dir / "1_demo.png")
    assert page.get_by_text("vocabulary:").count() >= 1  # the GUI says which text encoder answers

    # an error in a callback is shown, and the viewer keeps serving
    click_button(page, "Download PLY")  # nothing selected yet
    wait_until(lambda: page.get_by_text("nothing to export").count() >= 1, what="error notification", page=page)
    screenshot(page, artifact_dir / "1b_error_shown.png")
    close_notifications(page)

    # the mug's pixels in that frame, rendered directly
    scene = tab.session.base_scene
    mug = object_pixels(tab, cam, MUG)
    assert mug.sum() > 100

    set_text_input(page, "Prompt", "red mug")
    wait_until(lambda: tab.session.prompt.positives == ("red mug",), what="prompt reaches the server", page=page)
    after, cam2 = shown(page, tab)
    screenshot(page, artifact_dir / "2_prompt_red_mug.png")
    assert np.allclose(cam2.w2c, cam.w2c)
    change = np.abs(after - before).sum(-1)
    assert change[mug].mean() > 30 and change[mug].mean() > 10 * change[~mug].mean(), (
        change[mug].mean(),
        change[~mug].mean(),
    )
    # what the browser shows is the frame the session renders for that camera (JPEG tolerance)
    direct = tab.session.render(cam2, "relevancy").astype(int)
    assert np.median(np.abs(after - direct).sum(-1)) < 20

    # click on the mug -> its Gaussians are selected and labelled
    ys, xs = np.nonzero(mug)
    click_canvas(page, (np.median(xs) + 0.5) / cam.width, (np.median(ys) + 0.5) / cam.height)
    wait_until(lambda: tab.session.selection.any(), what="selection after click", page=page)
    wait_until(
        lambda: "red mug" in tab.panels.selection.selection_md.content, what="label of the clicked instance", page=page
    )
    selected = tab.session.selection
    truth = scene.extras["object_id"]
    # the whole mug, its rim sunk in the table's fuzz and its unseen parts too, and nothing else
    assert selected[truth == MUG].mean() >= 0.95 and (truth[selected] != MUG).mean() < 0.02, (
        selected[truth == MUG].mean(),
        (truth[selected] != MUG).mean(),
    )
    select_dropdown(page, "View", "selection")
    wait_until(lambda: tab.view_mode == "selection", what="selection view", page=page)
    shown(page, tab)
    screenshot(page, artifact_dir / "3_selected_mug.png")

    # export the selection: a valid PLY with only the mug's Gaussians
    path = expect_download(page, lambda: click_button(page, "Download PLY"), dest_dir=tmp_path)
    ply = PlyData.read(str(path))
    ids = np.asarray(ply["vertex"]["object_id"])
    assert ply["vertex"].count == selected.sum() and (ids == MUG).mean() >= 0.99
    assert {"x", "f_dc_0", "opacity", "scale_0", "rot_0"} <= set(ply["vertex"].data.dtype.names)

    # train on a tiny capture from the panel; progress reaches 100 % and the new field is used
    capture = tmp_path / "capture"
    write_capture(scene, orbit_cameras((0, 0, 0.8), 1.4, 2, elevation_deg=35, width=48, height=36), capture)
    training = tab.panels.training
    page.get_by_text("Training", exact=True).first.click()  # open the folder
    page.get_by_text("Fields", exact=True).first.click()
    set_text_input(page, "Dataset", str(capture))
    select_dropdown(page, "Levels", "0")
    set_text_input(page, "Steps", "6")
    set_text_input(page, "Image downsample", "1")
    select_dropdown(page, "Models", "tiny-random")
    wait_until(
        lambda: (
            training.models_in.value == "tiny-random"
            and int(training.steps_in.value) == 6
            and int(training.downsample_in.value) == 1
        ),
        what="training inputs",
        on_timeout=lambda: (
            f"models {training.models_in.value!r}, steps {training.steps_in.value!r}, "
            f"downsample {training.downsample_in.value!r}, dataset {training.dataset_in.value!r}"
        ),
    )
    click_button(page, "Start training")
    wait_until(lambda: viewer.job.state in ("done", "failed"), what="training finished", timeout=240)
    assert viewer.job.state == "done", viewer.job.message
    wait_until(lambda: page.get_by_text("ovseg-tiny-clip").count() >= 1, what="new encoder shown", timeout=10)
    wait_until(lambda: training.progress.value >= 100.0, what="progress 100%")
    wait_until(lambda: page.get_by_text("the new fields are in use").count() >= 1, what="done shown in the panel")
    screenshot(page, artifact_dir / "4_trained.png")
    assert tab.session.encoder_name.startswith("open_clip:ovseg-tiny-clip")
    # the run is a normal run directory under the output folder (ovseg-view --fields reads it) ...
    run_dir = viewer.job.result.run_dir
    assert run_dir is not None and run_dir.parent == viewer.runs_dir and any(run_dir.rglob("*.pt"))
    _, fields, encoder, note = load_session_inputs(ViewCommand(fields=(run_dir,)))
    assert fields is not None and fields.levels.keys() == {0} and encoder.name.startswith("open_clip:ovseg-tiny")
    assert viewer.errors == ["UsageError: nothing to export: the selection is empty"]
    # ... and a viewer restarted on the same scene and output folder still opens the demo with its
    # shipped fields; the trained ones are listed, and one pick uses them again
    start = viewer.fields_history[0]
    viewer.stop()
    restarted = Viewer(
        ViewerSession(
            scene,
            make_renderer("cpu"),
            fields=start.fields,
            text_encoder=start.encoder,
            output_dir=tmp_path / "exports",
        ),
        host="127.0.0.1",
        port=free_port(),
        still_height=300,
    )
    try:
        page = chromium.new_page()
        tab = open_viewer(page, restarted)
        assert tab.session.encoder_name.startswith("vocabulary:") and restarted.fields_index == 0
        trained = next(i for i, e in enumerate(restarted.fields_history) if e.path == run_dir.resolve())
        wait_until(lambda: page.get_by_text("vocabulary:").count() >= 1, what="shipped fields shown", page=page)
        set_text_input(page, "Prompt", "red mug")  # the shipped fields answer: the mug, not the whole scene
        wait_until(lambda: "**Prompt:**" in tab.panels.prompt.stats_md.content, what="prompt answered", page=page)
        truth = scene.extras["object_id"]
        answer = tab.session.prompt_selection()
        assert (truth[answer] == MUG).mean() > 0.95, (truth[answer] == MUG).mean()
        screenshot(page, artifact_dir / "5_restarted.png")
        close_notifications(page)
        page.get_by_text("Fields", exact=True).first.click()
        select_dropdown(page, "Fields", restarted.fields_options()[trained])
        click_button(page, "Use these fields")
        wait_until(lambda: page.get_by_text("ovseg-tiny-clip").count() >= 1, what="trained fields in use", page=page)
        # every panel has been told (the tab re-rendered for the change) before we pick another entry
        wait_until(lambda: settled(tab), what="tab refreshed", timeout=30, page=page)
        select_dropdown(page, "Fields", "0: fields at start-up")
        click_button(page, "Use these fields")
        wait_until(lambda: tab.session.encoder_name.startswith("vocabulary:"), what="fields reverted", page=page)
        wait_until(lambda: page.get_by_text("vocabulary:").count() >= 1, what="old encoder shown again", page=page)
        # the tab's spatial-consistency knobs reach its session
        click_label(page, "Spatial consistency")
        wait_until(lambda: not tab.session.selection_config.enabled, what="consistency off")
        click_label(page, "Spatial consistency")
        wait_until(lambda: tab.session.selection_config.enabled, what="consistency on again")
        set_slider(page, "Neighbourhood", 2.0)
        wait_until(lambda: tab.session.selection_config.neighbourhood_weight == 2.0, what="neighbourhood weight")
        assert restarted.errors == []
    finally:
        restarted.stop()


def test_a_click_in_the_rgb_view_changes_the_pixels_of_the_clicked_object(viewer, chromium, artifact_dir):
    page = chromium.pages[0]
    tab = open_viewer(page, viewer)
    select_dropdown(page, "View", "rgb")
    wait_until(lambda: tab.view_mode == "rgb", what="rgb view", page=page)
    before, cam = shown(page, tab)
    mug = object_pixels(tab, cam, MUG)
    ys, xs = np.nonzero(mug)
    click_canvas(page, (np.median(xs) + 0.5) / cam.width, (np.median(ys) + 0.5) / cam.height)
    wait_until(lambda: tab.session.selection.any(), what="mug selected", page=page)
    after, _ = shown(page, tab)
    screenshot(page, artifact_dir / "selected_in_rgb.png")
    change = np.abs(after - before).sum(-1)
    assert change[mug].mean() > 30 and change[mug].mean() > 10 * change[~mug].mean(), (
        change[mug].mean(),
        change[~mug].mean(),
    )


def test_the_prompt_count_is_what_select_and_export_give(viewer, chromium, tmp_path):
    page = chromium.pages[0]
    tab = open_viewer(page, viewer)
    set_text_input(page, "Prompt", "red mug")
    stats = tab.panels.prompt.stats_md
    wait_until(lambda: "**Prompt:**" in stats.content, what="prompt count shown", page=page)
    count = int(re.search(r"\*\*Prompt:\*\* ([\d,]+) Gaussians", stats.content).group(1).replace(",", ""))
    assert count > 0
    select_dropdown(page, "Export what", "prompt")
    wait_until(lambda: tab.panels.export.kind_in.value == "prompt", what="export the prompt", page=page)
    path = expect_download(page, lambda: click_button(page, "Download PLY"), dest_dir=tmp_path)
    assert PlyData.read(str(path))["vertex"].count == count
    select_dropdown(page, "Format", "SPZ")  # the same Gaussians for PlayCanvas / Scaniverse
    wait_until(lambda: tab.panels.export.download_btn.label == "Download SPZ", what="SPZ chosen", page=page)
    path = expect_download(page, lambda: click_button(page, "Download SPZ"), dest_dir=tmp_path)
    assert path.name == "selection.spz" and load_scene(path).num_gaussians == count
    click_button(page, "Select prompt result")
    wait_until(lambda: f"**Selection:** {count:,} Gaussians" in stats.content, what="same selection", page=page)
    # the colour-scale legend shows only in the views coloured by it
    legend = page.get_by_text("relevancy 0.5 → 1.0", exact=True)
    wait_until(lambda: legend.count() and legend.first.is_visible(), what="legend in the relevancy view", page=page)
    for mode in ("depth", "pca", "relevancy"):
        select_dropdown(page, "View", mode)
        wait_until(
            lambda m=mode: (
                tab.view_mode == m and (legend.count() > 0 and legend.first.is_visible()) == (m == "relevancy")
            ),
            what=f"legend {'shown' if mode == 'relevancy' else 'hidden'} in the {mode} view",
            page=page,
        )


def test_a_prompt_without_match_shows_the_plain_frame_dimmed(viewer, chromium, artifact_dir):
    page = chromium.pages[0]
    tab = open_viewer(page, viewer)
    set_text_input(page, "Prompt", "banana")
    wait_until(
        lambda: page.get_by_text("No match", exact=False).count() >= 1 and settled(tab), what="no match", page=page
    )
    dimmed, cam = shown(page, tab)
    screenshot(page, artifact_dir / "no_match.png")
    plain = tab.session.render(cam, "rgb").astype(float)
    expected = np.round(DIM * plain)
    assert np.abs(tab.last_frame.astype(int) - expected).max() <= 1  # no speckle: every pixel is the plain one dimmed
    assert np.median(np.abs(dimmed - expected).sum(-1)) < 20  # and that is what the browser shows


def test_eight_clients_each_get_their_own_camera_and_view(viewer, chromium):
    pages = [chromium.pages[0]] + [chromium.new_page() for _ in range(7)]
    for page in pages:
        wait_for_viser(page, viewer.url, ready_text=READY)
    wait_until(
        lambda: len(viewer.tabs) == 8 and all(v.frames > 0 for v in viewer.tabs.values()),
        what="8 clients with frames",
        timeout=60,
    )
    views = list(viewer.tabs.values())
    target = np.array([0.0, 0.0, 0.8])
    wanted = [np.array([np.cos(i), np.sin(i), 0.6]) * 2.0 + target for i in range(len(views))]
    for view, position in zip(views, wanted):  # move every client's camera somewhere else
        view.client.camera.position = tuple(position)
        view.client.camera.look_at = tuple(target)

    def settled(view, position) -> bool:  # noqa: ANN001
        # position and look_at arrive as two updates: a frame between them looks elsewhere
        cam = view.last_camera
        if cam is None:
            return False
        R, t = cam.w2c[:3, :3], cam.w2c[:3, 3]
        centre, forward = -R.T @ t, R.T @ np.array([0.0, 0.0, 1.0])
        to_target = (target - centre) / np.linalg.norm(target - centre)
        return bool(np.linalg.norm(centre - position) < 1e-3 and forward @ to_target > np.cos(np.radians(1)))

    wait_until(
        lambda: all(settled(v, p) for v, p in zip(views, wanted)),
        what="8 cameras, each at its new place and looking at the scene, rendered",
        timeout=60,
    )
    frames = [v.last_frame for v in views]
    assert len({f.tobytes() for f in frames}) == 8
