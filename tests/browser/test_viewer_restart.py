"""The viewer in a real browser across a restart, and the training preflight's errors in the GUI:
a capture that does not see the splat is refused before any model loads; a level without masks
is refused after a few views, not after the whole capture, and a second quick failure is shown as
well; fields loaded and a selection saved in one server are listed in a fresh page of the next
server on the same output folder, which still starts with the scene's own fields."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from demo_viewer import open_page, start_viewer
from harness import (
    chromium_available,
    click_button,
    click_canvas,
    close_notifications,
    select_dropdown,
    set_text_input,
    skip_reason,
    wait_until,
)

from ovseg_app.demo import DEMO_FIELDS_PATH, demo_vocabulary
from ovseg_core.camera import orbit_cameras
from ovseg_core.models.palette_models import PaletteImageEncoder, PaletteMaskGenerator
from ovseg_core.render import make_renderer
from ovseg_core.synthetic import write_capture

pytestmark = pytest.mark.skipif(not chromium_available(), reason=skip_reason())

MUG = 1  # DEMO_OBJECTS index


def open_folder(page, name: str) -> None:
    page.get_by_text(name, exact=True).first.click()


def test_preflight_errors_are_shown_in_the_training_panel(demo, chromium, tmp_path, artifact_dir):
    from harness import screenshot

    scene = demo[0]
    viewer = start_viewer(demo, tmp_path / "out")
    try:
        page = chromium.pages[0]
        tab = open_page(page, viewer)
        training = tab.panels.training
        open_folder(page, "Training")
        # 1. cameras that look away from the splat: refused at once, before any model or thread starts
        away = tmp_path / "away"
        write_capture(scene, orbit_cameras((40.0, 0, 0), 2.0, 4, elevation_deg=20, width=32, height=24), away)
        set_text_input(page, "Dataset", str(away))
        wait_until(lambda: training.dataset_in.value == str(away), what="dataset path", page=page)
        click_button(page, "Start training")
        wait_until(
            lambda: page.get_by_text("do not see the loaded splat", exact=False).count() >= 1,
            what="preflight error notification",
            page=page,
        )
        screenshot(page, artifact_dir / "1_capture_does_not_see_the_splat.png")
        assert viewer.job.state == "idle" and viewer.errors[-1].startswith("UsageError: the capture's cameras")
        close_notifications(page)

        # 2. a capture that sees the splat, at a level its masks do not have: refused after the
        # first, middle and last views, not after preprocessing all of them
        voc = demo_vocabulary()
        viewer.job.models = (PaletteMaskGenerator(voc.colors.numpy()), PaletteImageEncoder(voc))
        capture = tmp_path / "capture"
        write_capture(scene, orbit_cameras((0, 0, 0.8), 1.4, 6, elevation_deg=35, width=48, height=36), capture)
        set_text_input(page, "Dataset", str(capture))
        select_dropdown(page, "Levels", "1")
        set_text_input(page, "Cache folder", "../elsewhere")  # the GUI may only write inside the output folder
        wait_until(
            lambda: (
                training.dataset_in.value == str(capture)
                and training.levels_in.value == "1"
                and training.cache_in.value == "../elsewhere"
            ),
            what="capture, level and cache folder",
            page=page,
        )
        click_button(page, "Start training")
        wait_until(
            lambda: page.get_by_text("must lie inside the output folder", exact=False).count() >= 1,
            what="cache folder refused",
            page=page,
        )
        assert viewer.job.state == "idle"
        close_notifications(page)
        set_text_input(page, "Cache folder", "cache")
        wait_until(lambda: training.cache_in.value == "cache", what="cache folder", page=page)
        click_button(page, "Start training")
        wait_until(lambda: viewer.job.state == "failed", what="job refused", timeout=30, page=page)
        assert "no mask at level 1 (small) in any of the 3 views checked so far (of 6)" in viewer.job.error
        wait_until(
            lambda: page.get_by_text("no mask at level 1", exact=False).count() >= 1,
            what="mask error shown in the page",
            page=page,
        )
        # the panel's state word, not a message that merely mentions it ("preflight done" while running)
        wait_until(lambda: training.train_md.content.startswith("**failed**"), what="panel says failed", page=page)
        assert not training.train_btn.disabled and training.cancel_btn.disabled
        screenshot(page, artifact_dir / "2_no_masks_at_level.png")
        cached = list((tmp_path / "out" / "cache").rglob("*.npz"))
        assert len(cached) == 3, [p.name for p in cached]
        # the next run starts from the 3 cached views and checks all 6: one of the later views has a
        # level-1 mask, so the level is thinly covered, not absent, and the run trains (with the note)
        click_button(page, "Start training")
        wait_until(
            lambda: viewer.job.state == "done" and training.train_md.content.startswith("**done**"),
            what="second run trained and shown in the panel",
            timeout=60,
            page=page,
            on_timeout=lambda: f"panel says {training.train_md.content!r}, job {viewer.job.state}",
        )
        assert "masks in all 6 views checked (level 1 has masks in 1 of 6 views)" in viewer.job.preflight
        assert not training.train_btn.disabled and training.cancel_btn.disabled
        # the viewer keeps serving: a prompt still re-renders
        frames = tab.frames
        set_text_input(page, "Prompt", "red mug")
        wait_until(lambda: tab.frames > frames, what="frame after the errors", timeout=30, page=page)
    finally:
        viewer.stop()


def test_loaded_fields_and_a_saved_selection_come_back_after_a_restart(demo, chromium, tmp_path, artifact_dir):
    from harness import screenshot

    out = tmp_path / "out"
    copy = tmp_path / "my_fields.pt"
    shutil.copy(DEMO_FIELDS_PATH, copy)
    page = chromium.pages[0]
    viewer = start_viewer(demo, out)
    try:
        tab = open_page(page, viewer)
        open_folder(page, "Fields")
        set_text_input(page, "Load from", str(copy))
        wait_until(lambda: tab.panels.training.load_in.value == str(copy), what="fields path", page=page)
        click_button(page, "Load fields")
        wait_until(lambda: viewer.fields_index == 1, what="loaded fields in use", page=page)
        # select the mug with a click and save the selection by name
        scene, cam = tab.session.base_scene, tab.last_camera
        onehot = F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), 5).float()
        mug = make_renderer("cpu").render(scene, cam, features=onehot).features[0, ..., MUG].numpy() > 0.5
        ys, xs = np.nonzero(mug)
        click_canvas(page, (np.median(xs) + 0.5) / cam.width, (np.median(ys) + 0.5) / cam.height)
        wait_until(lambda: tab.session.selection.any(), what="mug selected", page=page)
        selected = tab.session.selection.copy()
        set_text_input(page, "Selection name", "the mug")
        wait_until(lambda: tab.panels.selection.name_in.value == "the mug", what="selection name", page=page)
        click_button(page, "Save selection")
        wait_until(lambda: viewer.saved.selection_names() == ["the_mug"], what="selection saved", page=page)
    finally:
        viewer.stop()

    restarted = start_viewer(demo, out)  # a new server on the same scene and output folder
    try:
        page = chromium.new_page()
        tab = open_page(page, restarted)
        # the scene's own fields are in use; the loaded ones are listed, and the page says so
        assert restarted.fields_index == 0 and restarted.fields_history[1].path == copy.resolve()
        assert tab.panels.training.fields_in.value == "0: fields at start-up"
        open_folder(page, "Fields")
        wait_until(
            lambda: page.get_by_text("trained or loaded earlier", exact=False).count() >= 1,
            what="listed note",
            page=page,
        )
        # the saved selection is listed; loading it selects the same Gaussians
        assert tab.panels.selection.saved_in.value == "the_mug"
        assert not tab.session.selection.any()
        click_button(page, "Load selection")
        wait_until(lambda: tab.session.selection.any(), what="selection loaded", page=page)
        assert np.array_equal(tab.session.selection, selected)
        wait_until(
            lambda: page.get_by_text("loaded 'the_mug'", exact=False).count() >= 1, what="loaded shown", page=page
        )
        screenshot(page, artifact_dir / "restarted.png")
        # the loaded fields are offered: picking them uses them, and going back is remembered too
        select_dropdown(page, "Fields", "1: loaded my_fields.pt")
        click_button(page, "Use these fields")
        wait_until(lambda: restarted.fields_index == 1, what="loaded fields in use", page=page)
        # every panel has been told (the tab re-rendered for the change) before we pick another entry
        wait_until(lambda: tab.rendered_key[-1] == restarted.version, what="tab refreshed", timeout=30, page=page)
        select_dropdown(page, "Fields", "0: fields at start-up")
        click_button(page, "Use these fields")
        wait_until(lambda: restarted.fields_index == 0, what="reverted", page=page)
        assert restarted.saved.fields_in_use is None
    finally:
        restarted.stop()
