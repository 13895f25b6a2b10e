"""The Training panel in Chromium: on the built-in demo its defaults train offline on the shipped
capture, and a failure followed at once by an identical one still leaves the panel saying failed."""

from __future__ import annotations

import time

import pytest
from demo_viewer import open_page, start_viewer
from harness import (
    chromium_available,
    click_button,
    set_text_input,
    skip_reason,
    wait_until,
)

from ovseg_app.demo import DEMO_CAPTURE_DIR
from ovseg_app.viewer.server import Viewer
from ovseg_core.camera import orbit_cameras
from ovseg_core.synthetic import write_capture

pytestmark = pytest.mark.skipif(not chromium_available(), reason=skip_reason())


def open_training(page, viewer: Viewer):
    tab = open_page(page, viewer)
    page.get_by_text("Training", exact=True).first.click()
    return tab


def test_the_panel_defaults_train_the_demo_on_its_shipped_capture(demo, chromium, tmp_path):
    viewer = start_viewer(demo, tmp_path / "out")
    try:
        page = chromium.pages[0]
        tab = open_training(page, viewer)
        panel = tab.panels.training
        assert panel.dataset_in.value == str(DEMO_CAPTURE_DIR) and panel.models_in.value == "demo-palette"
        fields_before = len(viewer.fields_history)
        started = time.perf_counter()
        click_button(page, "Start training")  # nothing changed: the defaults as they are
        wait_until(lambda: viewer.job.state != "idle", what="job started", page=page)
        wait_until(lambda: not viewer.job.running, what="job finished", timeout=300, page=page)
        seconds = time.perf_counter() - started
        assert viewer.job.state == "done", viewer.job.message
        print(f"default demo training from the panel: {seconds:.1f} s ({viewer.job.message})")
        wait_until(lambda: "done" in panel.train_md.content, what="panel says done", page=page)
        wait_until(
            lambda: page.get_by_text("the new fields are in use", exact=False).count() >= 1, what="page", page=page
        )
        assert len(viewer.fields_history) == fields_before + 1 and viewer.job.warning == ""
        run_dir = viewer.job.result.run_dir
        assert run_dir.parent == tmp_path / "out" / "runs" and (run_dir / "metrics_log.csv").is_file()
        assert list((tmp_path / "out" / "cache").rglob("*.npz"))  # the shipped capture's folder is never written
        frames = tab.frames
        set_text_input(page, "Prompt", "red mug")  # the trained fields answer prompts
        wait_until(lambda: tab.frames > frames, what="frame with the new fields", timeout=30, page=page)
    finally:
        viewer.stop()


def test_a_second_identical_failure_right_after_the_first_shows_failed(demo, chromium, tmp_path):
    """Two runs that fail within a fraction of a second with the same message: the panel must end on
    "failed" (a poller that compares snapshots of the job sees no change and leaves "running")."""
    scene = demo[0]
    capture = tmp_path / "capture"
    write_capture(scene, orbit_cameras((0, 0, 0.8), 1.4, 6, elevation_deg=35, width=48, height=36), capture)
    (capture / "images" / "frame_00000.png").write_bytes(b"not a png")  # read in the job thread: fails at once
    viewer = start_viewer(demo, tmp_path / "out")
    try:
        page = chromium.pages[0]
        tab = open_training(page, viewer)
        panel = tab.panels.training
        set_text_input(page, "Dataset", str(capture))
        wait_until(lambda: panel.dataset_in.value == str(capture), what="dataset path", page=page)
        messages = []
        for attempt in (1, 2):
            thread = viewer.job._thread
            wait_until(lambda: not panel.train_btn.disabled, what="start enabled", page=page)
            click_button(page, "Start training")
            wait_until(lambda t=thread: viewer.job._thread is not t, what=f"run {attempt} started", page=page)
            viewer.job.wait(60)
            assert viewer.job.state == "failed" and "cannot read image" in viewer.job.error, viewer.job.message
            messages.append(viewer.job.message)
            wait_until(
                lambda: panel.train_md.content.startswith("**failed**") and not panel.train_btn.disabled,
                what=f"panel says failed after failure {attempt}",
                timeout=10,
                page=page,
            )
        assert messages[0] == messages[1]
        wait_until(lambda: page.get_by_text("**running**", exact=False).count() == 0, what="no running", page=page)
    finally:
        viewer.stop()
