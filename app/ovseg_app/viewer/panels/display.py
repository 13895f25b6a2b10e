"""The Display panel: where frames are drawn, their size and quality, the render time, the camera
(reset, up axis) and screenshots at a chosen size."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ovseg_app.viewer.gui_jobs import GuiJob
from ovseg_app.viewer.panels.inputs import checked_choice, clamped_number
from ovseg_app.viewer.scene_orientation import as_tuple
from ovseg_core.errors import UsageError
from ovseg_core.orientation import AXES as UP_AXES

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab

MAX_SCREENSHOT = 4096
"""Longest screenshot side in pixels."""


class DisplayPanel:
    """Per-tab display settings; frames follow the browser's canvas up to ``Max height``."""

    def __init__(self, tab: Tab) -> None:
        from ovseg_app.viewer.tab import MAX_HEIGHT, MIN_HEIGHT

        self.tab = tab
        self._shown_at = 0.0
        gui = tab.client.gui
        with gui.add_folder("Display", expand_by_default=False):
            self.display_in = gui.add_dropdown("Display", options=("server", "browser"), initial_value=tab.display_mode)
            self.height_in = gui.add_slider(
                "Max height", min=MIN_HEIGHT, max=MAX_HEIGHT, step=16, initial_value=float(tab.max_height)
            )
            self.quality_in = gui.add_slider("JPEG quality", min=10, max=100, step=1, initial_value=85.0)
            self.timing_md = gui.add_markdown("Render: -")
            self.up_in = gui.add_dropdown("Up axis", options=tuple(UP_AXES), initial_value=tab.viewer.orientation.axis)
            self.reset_btn = gui.add_button("Reset camera")
            self.shot_w_in = gui.add_number(
                "Screenshot width", initial_value=1920.0, min=16, max=MAX_SCREENSHOT, step=1
            )
            self.shot_h_in = gui.add_number(
                "Screenshot height", initial_value=1080.0, min=16, max=MAX_SCREENSHOT, step=1
            )
            self.shot_btn = gui.add_button("Download screenshot PNG")
        g = tab.guarded
        self.display_in.on_update(g(self._on_display))
        self.height_in.on_update(g(self._on_height))
        self.quality_in.on_update(g(self._on_quality))
        self.up_in.on_update(g(self._on_up))
        self.reset_btn.on_click(g(lambda e: self.reset_camera()))
        self.shot_btn.on_click(g(self._on_screenshot))
        for handle in (self.shot_w_in, self.shot_h_in):
            handle.on_update(g(lambda e, h=handle: clamped_number(h, 16, MAX_SCREENSHOT, integer=True)))

    def _on_display(self, event: Any) -> None:
        self.tab.set_display(checked_choice(self.display_in, ("server", "browser"), self.tab.display_mode))

    def _on_height(self, event: Any) -> None:
        from ovseg_app.viewer.tab import MAX_HEIGHT, MIN_HEIGHT

        self.tab.max_height = int(clamped_number(self.height_in, MIN_HEIGHT, MAX_HEIGHT, integer=True))
        self.tab.wake.set()

    def _on_quality(self, event: Any) -> None:
        self.tab.jpeg_quality = int(clamped_number(self.quality_in, 10, 100, integer=True))
        self.tab.wake.set()

    def _on_up(self, event: Any) -> None:
        """A new up axis: the view turns upright about its target and the choice is remembered."""
        orientation = self.tab.viewer.orientation
        axis = checked_choice(self.up_in, tuple(UP_AXES), orientation.axis)
        orientation.choose(axis)
        self.tab.client.camera.up_direction = UP_AXES[axis]

    def reset_camera(self) -> None:
        """Look at the bulk of the scene (robust percentiles, not its floaters) from outside it,
        upright for the chosen up axis."""
        cam = self.tab.client.camera
        axis = self.up_in.value
        if self.tab.session.base_scene.num_gaussians:
            try:
                fov, aspect = float(cam.fov), float(cam.aspect)
            except (AssertionError, TypeError, ValueError):  # no camera message yet
                fov, aspect = np.radians(60.0), 1.0
            view = self.tab.viewer.orientation.framing(axis, fov_y_deg=float(np.degrees(fov)), aspect=aspect)
            cam.position = as_tuple(view.position)
            cam.look_at = as_tuple(view.look_at)
        cam.up_direction = UP_AXES.get(axis, UP_AXES["+z"])

    def show_render_time(self) -> None:
        """Frame time and size, at most twice a second (each update is a message to the tab)."""
        now = time.monotonic()
        if now - self._shown_at < 0.5 or self.tab.render_ms is None or self.tab.last_camera is None:
            return
        self._shown_at = now
        cam = self.tab.last_camera
        self.timing_md.content = f"Render: {self.tab.render_ms:.0f} ms at {cam.width}x{cam.height}"

    def _on_screenshot(self, event: Any) -> None:
        width = int(clamped_number(self.shot_w_in, 16, MAX_SCREENSHOT, integer=True))
        height = int(clamped_number(self.shot_h_in, 16, MAX_SCREENSHOT, integer=True))
        camera = self.tab.camera(height, width=width, max_height=MAX_SCREENSHOT, max_pixels=MAX_SCREENSHOT**2)
        if camera is None:
            raise UsageError("this tab has no usable camera yet")
        mode, session, client, tab = self.tab.view_mode, self.tab.session, event.client, self.tab

        def work(job: GuiJob) -> None:
            png = session.relevancy_png(camera, mode, job.check)  # cancellable between strips
            job.check()  # cancelled meanwhile (the viewer stopping): send nothing
            client.send_file_download(f"{mode}_{width}x{height}.png", png)

        def done(job: GuiJob) -> None:
            if job.state == "failed":
                tab.viewer.notify(tab.client, "Screenshot failed", job.error or "", color="red")

        # a job: the callback returns at once, the viewer's stop waits for it, and one screenshot at
        # a time across all tabs bounds the memory large ones take
        tab.viewer.gui_jobs.start(GuiJob("screenshot", work, on_change=done, wanted=lambda: tab.alive))
