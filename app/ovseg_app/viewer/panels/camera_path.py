"""The Camera path panel: keyframes from this tab's camera, a video of the current view mode
along them (downloaded, and saved into the output folder when there is one), made by a
cancellable job."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovseg_app.cli_checks import MAX_VIDEO_FRAMES
from ovseg_app.viewer.camera_path import MAX_KEYFRAMES, Keyframe, path_cameras, write_mp4
from ovseg_app.viewer.gui_jobs import GuiJob
from ovseg_app.viewer.panels.inputs import clamped_number
from ovseg_core.errors import UsageError

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab


class CameraPathPanel:
    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        self.keyframes: list[Keyframe] = []
        self.job: GuiJob | None = None
        self._shown_at = 0.0
        gui = tab.client.gui
        with gui.add_folder("Camera path", expand_by_default=False):
            self.add_btn = gui.add_button("Add keyframe")
            self.clear_btn = gui.add_button("Clear keyframes")
            self.keys_md = gui.add_markdown("No keyframes.")
            self.seconds_in = gui.add_number("Seconds", initial_value=4.0, min=0.1, max=100.0, step=0.1)
            self.fps_in = gui.add_number("FPS", initial_value=24.0, min=1, max=60, step=1)
            self.height_in = gui.add_number("Video height", initial_value=360.0, min=32, max=1080, step=2)
            self.render_btn = gui.add_button("Render video")
            self.cancel_btn = gui.add_button("Cancel video", disabled=True)
            self.status_md = gui.add_markdown("")
        g = tab.guarded
        self.add_btn.on_click(g(self._on_add))
        self.clear_btn.on_click(g(self._on_clear))
        self.render_btn.on_click(g(self._on_render))
        self.cancel_btn.on_click(g(self._on_cancel))

    def _show(self) -> None:
        n = len(self.keyframes)
        self.keys_md.content = f"{n} keyframe{'s' if n != 1 else ''}." if n else "No keyframes."

    def _on_add(self, event: Any) -> None:
        if len(self.keyframes) >= MAX_KEYFRAMES:
            raise UsageError(f"at most {MAX_KEYFRAMES} keyframes")
        cam = self.tab.camera(self.tab.frame_height(moving=False))
        if cam is None:
            raise UsageError("this tab has no usable camera yet")
        c = self.tab.client.camera
        self.keyframes.append(Keyframe(tuple(c.wxyz), tuple(c.position), float(c.fov)))
        self._show()

    def _on_clear(self, event: Any) -> None:
        self.keyframes = []
        self._show()

    def _on_render(self, event: Any) -> None:
        """Validate and start the video as a job (the callback returns at once; Cancel stops it)."""
        seconds = clamped_number(self.seconds_in, 0.1, 100.0)
        fps = int(clamped_number(self.fps_in, 1, 60, integer=True))
        height = int(clamped_number(self.height_in, 32, 1080, integer=True)) // 2 * 2
        frames = min(max(2, round(seconds * fps)), MAX_VIDEO_FRAMES)
        probe = self.tab.camera(height)
        aspect = probe.width / probe.height if probe is not None else 16 / 9
        width = max(2, round(height * aspect) // 2 * 2)  # H.264 wants even sizes
        cameras = path_cameras(self.keyframes, frames, width, height)
        session, mode, client = self.tab.session, self.tab.view_mode, event.client
        tab = self.tab

        def work(job: GuiJob) -> Path:
            render = lambda c: session.render(c, mode)  # noqa: E731
            progress = lambda done, total: job.progress(done / total, f"frame {done}/{total} at {width}x{height}")  # noqa: E731
            if session.output_dir is not None:
                path = write_mp4(session.output_path("camera_path.mp4"), cameras, render, fps, progress)
                client.send_file_download(path.name, path.read_bytes())
                return path
            with tempfile.TemporaryDirectory(prefix="ovseg-video-") as folder:  # removed even when cancelled
                path = write_mp4(Path(folder) / "camera_path.mp4", cameras, render, fps, progress)
                client.send_file_download(path.name, path.read_bytes())
            return path

        self.job = GuiJob("video", work, on_change=self._show_job, wanted=lambda: tab.alive)
        self.render_btn.disabled, self.cancel_btn.disabled = True, False
        try:
            tab.viewer.gui_jobs.start(self.job)
        except Exception:
            self.render_btn.disabled, self.cancel_btn.disabled = False, True
            raise

    def _on_cancel(self, event: Any) -> None:
        if self.job is not None:
            self.job.cancel()

    def _show_job(self, job: GuiJob) -> None:
        """Job status in the panel, at most twice a second while it runs (each update is a message)."""
        now = time.monotonic()
        if job.running and now - self._shown_at < 0.5:
            return
        self._shown_at = now
        self.status_md.content = f"Video: {job.message}" if job.running else f"Video {job.message}."
        if not job.running:
            self.render_btn.disabled, self.cancel_btn.disabled = False, True
            if job.state == "done":
                where = f" (saved as {job.result})" if self.tab.session.output_dir is not None else ""
                self.tab.viewer.notify(self.tab.client, "Video ready", f"camera_path.mp4{where}")
            elif job.state == "failed":
                self.tab.viewer.notify(self.tab.client, "Video failed", job.error or "", color="red")
