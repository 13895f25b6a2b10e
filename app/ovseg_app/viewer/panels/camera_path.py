"""The Camera path panel, nerfstudio's render panel for one tab: keyframes from this tab's camera
(each with the field of view it was taken at), spline smoothness, loop, transition time, a preview
slider that moves this tab's camera along the path, ``camera_path.json`` save and load (nerfstudio's
format), and a video of the tab's view mode along the path, made by a cancellable job."""

from __future__ import annotations

import math
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovseg_app.cli_checks import MAX_VIDEO_FRAMES
from ovseg_app.viewer import camera_path as files
from ovseg_app.viewer.gui_jobs import GuiJob
from ovseg_app.viewer.panels.inputs import checked_choice, checked_text, clamped_number
from ovseg_core.camera_path import CameraPath, Keyframe
from ovseg_core.camera_path.spline import MAX_KEYFRAMES
from ovseg_core.errors import UsageError

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab

NONE = "none"


class CameraPathPanel:
    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        self.keyframes: list[Keyframe] = []
        self._lock = threading.RLock()
        """Buttons run on the tab's event thread, widget updates on its render loop: one edit at a time."""
        self.job: GuiJob | None = None
        self._shown_at = 0.0
        self.overlay = files.PathOverlay(tab.client, lambda: tab.session.shared.points)
        gui = tab.client.gui
        with gui.add_folder("Camera path", expand_by_default=False):
            self.add_btn = gui.add_button("Add keyframe", hint="Add this view (and its FOV) at the end of the path.")
            self.keys_md = gui.add_markdown("No keyframes.")
            self.key_in = gui.add_dropdown("Keyframe", options=(NONE,), initial_value=NONE)
            self.goto_btn = gui.add_button("Go to keyframe")
            self.delete_btn = gui.add_button("Delete keyframe")
            self.clear_btn = gui.add_button("Clear keyframes")
            self.fov_in = gui.add_number("FOV (deg)", initial_value=50.0, min=1.0, max=170.0, step=1.0,
                                         hint="This tab's vertical field of view; a new keyframe keeps it.")  # fmt: skip
            self.transition_in = gui.add_number("Transition (s)", initial_value=2.0, min=0.05, max=60.0, step=0.05)
            self.tension_in = gui.add_slider("Smoothness", min=0.0, max=1.0, step=0.01, initial_value=0.0,
                                             hint="Spline tension: 0 flows through keyframes, 1 stops at each.")  # fmt: skip
            self.loop_in = gui.add_checkbox(
                "Loop", initial_value=False, hint="Go on from the last keyframe to the first."
            )
            self.preview_in = gui.add_slider("Preview", min=0.0, max=1.0, step=0.001, initial_value=0.0,
                                             hint="Move this tab's camera along the path.")  # fmt: skip
            self.show_in = gui.add_checkbox("Show path", initial_value=True)
            self.fps_in = gui.add_number("FPS", initial_value=24.0, min=1.0, max=60.0, step=1.0)
            self.width_in = gui.add_number("Video width", initial_value=640.0, min=32.0, max=3840.0, step=2.0)
            self.height_in = gui.add_number("Video height", initial_value=360.0, min=32.0, max=2160.0, step=2.0)
            self.name_in = gui.add_text("Path name", initial_value="camera_path")
            self.save_btn = gui.add_button("Save camera path")
            saved = self._saved_options()
            self.saved_in = gui.add_dropdown("Saved paths", options=saved, initial_value=saved[0])
            # nerfview (gsplat's viewer) divides positions by 10 when it saves: load its files at 10
            self.scale_in = gui.add_number(
                "Loaded position scale", initial_value=1.0, min=0.001, max=1000.0, step=0.001
            )
            self.load_btn = gui.add_button("Load camera path")
            self.upload_btn = gui.add_upload_button("Upload camera_path.json", mime_type="application/json")
            self.render_btn = gui.add_button("Render video")
            self.cancel_btn = gui.add_button("Cancel video", disabled=True)
            self.status_md = gui.add_markdown("")
        g = tab.guarded
        for handle, fn in (
            (self.add_btn, self._on_add), (self.goto_btn, self._on_goto), (self.delete_btn, self._on_delete),
            (self.clear_btn, self._on_clear), (self.save_btn, self._on_save), (self.load_btn, self._on_load),
            (self.render_btn, self._on_render), (self.cancel_btn, self._on_cancel),
        ):  # fmt: skip
            handle.on_click(g(fn))
        for handle in (self.transition_in, self.tension_in, self.loop_in, self.show_in, self.width_in, self.height_in):
            handle.on_update(g(self._on_settings))
        self.fps_in.on_update(g(self._on_settings))
        self.fov_in.on_update(g(self._on_fov))
        self.preview_in.on_update(g(self._on_preview))
        self.upload_btn.on_upload(g(self._on_upload))

    # -- the path ----------------------------------------------------------------------------------
    def path(self) -> CameraPath:
        """The keyframes with the panel's settings (widget values checked and clamped)."""
        return CameraPath(
            tuple(self.keyframes),
            default_fov_deg=clamped_number(self.fov_in, 1.0, 170.0),
            default_transition_s=clamped_number(self.transition_in, 0.05, 60.0),
            loop=bool(self.loop_in.value),
            tension=clamped_number(self.tension_in, 0.0, 1.0),
            fps=clamped_number(self.fps_in, 1, 60, integer=True),
            width=int(clamped_number(self.width_in, 32, 3840, integer=True)) // 2 * 2,  # H.264 wants even sizes
            height=int(clamped_number(self.height_in, 32, 2160, integer=True)) // 2 * 2,
        )

    def _changed(self) -> None:
        """Show the keyframes, the path's length, and the path itself in this tab's scene."""
        with self._lock:
            self._show(self.path())

    def _show(self, path: CameraPath) -> None:
        n = len(self.keyframes)
        text = f"{n} keyframe{'s' if n != 1 else ''}" if n else "No keyframes"
        if n >= 2:
            text += f", {path.duration():.1f} s ({path.frame_count()} frames at {path.fps:g} fps)"
        self.keys_md.content = text + "."
        options = tuple(str(i + 1) for i in range(n)) or (NONE,)
        if tuple(self.key_in.options) != options:
            self.key_in.options = options
            self.key_in.value = options[-1]
        self.overlay.show(path if self.show_in.value else None)

    def _chosen(self) -> int:
        options = tuple(str(i + 1) for i in range(len(self.keyframes))) or (NONE,)
        value = checked_choice(self.key_in, options, options[-1])
        if value == NONE:
            raise UsageError("no keyframes yet: add one with 'Add keyframe'")
        return int(value) - 1

    # -- callbacks ---------------------------------------------------------------------------------
    def _on_add(self, event: Any) -> None:
        if len(self.keyframes) >= MAX_KEYFRAMES:
            raise UsageError(f"at most {MAX_KEYFRAMES} keyframes")
        cam = self.tab.camera(self.tab.frame_height(moving=False))
        if cam is None:
            raise UsageError("this tab has no usable camera yet")
        with self._lock:
            self.keyframes.append(Keyframe.from_camera(cam))
            self._changed()

    def _on_goto(self, event: Any) -> None:
        k = self.keyframes[self._chosen()]
        self._move_camera(k.c2w(), self.path().default_fov_deg if k.fov_deg is None else k.fov_deg)

    def _on_delete(self, event: Any) -> None:
        with self._lock:
            del self.keyframes[self._chosen()]
            self._changed()

    def _on_clear(self, event: Any) -> None:
        with self._lock:
            self.keyframes = []
            self._changed()

    def _on_settings(self, event: Any) -> None:
        self._changed()

    def _on_fov(self, event: Any) -> None:
        self.tab.client.camera.fov = math.radians(clamped_number(self.fov_in, 1.0, 170.0))

    def _on_preview(self, event: Any) -> None:
        if len(self.keyframes) < 2:
            return
        c2w, fov = self.path().sample(np.array([clamped_number(self.preview_in, 0.0, 1.0)]))
        self._move_camera(c2w[0], float(fov[0]))

    def _move_camera(self, c2w: np.ndarray, fov_deg: float) -> None:
        """Put this tab's camera at ``c2w`` (OpenCV) with ``fov_deg``; its render loop renders it."""
        from ovseg_core.camera_path.spline import rotmat_to_wxyz

        camera = self.tab.client.camera
        with self.tab.client.atomic():  # rotation and position in one update, as nerfview does
            camera.wxyz = rotmat_to_wxyz(c2w[:3, :3])
            camera.position = c2w[:3, 3]
            camera.fov = math.radians(fov_deg)

    def _on_save(self, event: Any) -> None:
        path = self.path()
        if len(path.keyframes) < 2:
            raise UsageError("a camera path needs at least 2 keyframes")
        name = checked_text(self.name_in, "the path name", limit=200)
        file_name, data, saved = files.save_path_file(self.tab.session.output_dir, name, path)
        event.client.send_file_download(file_name, data)
        self.refresh_saved(select=file_name if saved is not None else None)
        where = f"saved as {saved}" if saved is not None else "downloaded (no output folder to save it in)"
        self.tab.viewer.notify(self.tab.client, "Camera path", f"{file_name} {where}")

    def _on_load(self, event: Any) -> None:
        options = self._saved_options()
        name = checked_choice(self.saved_in, options, options[0])
        if name == NONE:
            raise UsageError("no saved camera paths in the output folder's camera_paths/")
        self._use(files.load_saved_path(self.tab.session.output_dir, name, self._scale()))

    def _on_upload(self, event: Any) -> None:
        upload = self.upload_btn.value
        self._use(files.read_path_file(upload.content, str(upload.name)[:200], self._scale()))

    def _scale(self) -> float:
        """What loaded positions are multiplied by (1: as stored; 10: nerfview's files)."""
        return clamped_number(self.scale_in, 0.001, 1000.0)

    def _use(self, loaded: Any) -> None:
        """Take a loaded file's keyframes and settings into the panel."""
        path: CameraPath = loaded.path
        with self._lock:
            self.keyframes = list(path.keyframes)
        self.fov_in.value = float(path.default_fov_deg)
        self.transition_in.value = float(path.default_transition_s)
        self.tension_in.value = float(path.tension)
        self.loop_in.value = bool(path.loop)
        self.fps_in.value = float(min(max(round(path.fps), 1), 60))
        self.width_in.value, self.height_in.value = float(path.width), float(path.height)
        self._changed()

    def _saved_options(self) -> tuple[str, ...]:
        return tuple(files.saved_path_files(self.tab.session.output_dir)) or (NONE,)

    def refresh_saved(self, select: str | None = None) -> None:
        options = self._saved_options()
        if tuple(self.saved_in.options) != options:
            self.saved_in.options = options
        self.saved_in.value = select if select in options else options[0]

    def _on_render(self, event: Any) -> None:
        """Validate and start the video as a job (the callback returns at once; Cancel stops it)."""
        path = self.path()
        frames = path.frame_count()
        if frames > MAX_VIDEO_FRAMES:
            raise UsageError(f"{frames} frames is too long a video; at most {MAX_VIDEO_FRAMES} (fewer seconds or fps)")
        cameras = path.cameras()  # raises for fewer than 2 keyframes or no frames
        session, mode, client, tab = self.tab.session, self.tab.view_mode, event.client, self.tab
        size = f"{path.width}x{path.height}"

        def work(job: GuiJob) -> Path:
            render = lambda c: session.render(c, mode)  # noqa: E731
            progress = lambda done, total: job.progress(done / total, f"frame {done}/{total} at {size}")  # noqa: E731
            if session.output_dir is not None:
                out = files.write_mp4(session.output_path("camera_path.mp4"), cameras, render, path.fps, progress)
                client.send_file_download(out.name, out.read_bytes())
                return out
            with tempfile.TemporaryDirectory(prefix="ovseg-video-") as folder:  # removed even when cancelled
                out = files.write_mp4(Path(folder) / "camera_path.mp4", cameras, render, path.fps, progress)
                client.send_file_download(out.name, out.read_bytes())
            return out

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
