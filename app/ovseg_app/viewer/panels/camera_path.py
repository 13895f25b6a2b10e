"""The Camera path panel: keyframes from this tab's camera, a video of the current view mode
along them (downloaded, and saved into the output folder when there is one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ovseg_app.cli_checks import MAX_VIDEO_FRAMES
from ovseg_app.viewer.camera_path import MAX_KEYFRAMES, Keyframe, path_cameras, write_mp4
from ovseg_app.viewer.panels.inputs import clamped_number
from ovseg_core.errors import UsageError

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab


class CameraPathPanel:
    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        self.keyframes: list[Keyframe] = []
        gui = tab.client.gui
        with gui.add_folder("Camera path", expand_by_default=False):
            self.add_btn = gui.add_button("Add keyframe")
            self.clear_btn = gui.add_button("Clear keyframes")
            self.keys_md = gui.add_markdown("No keyframes.")
            self.seconds_in = gui.add_number("Seconds", initial_value=4.0, min=0.1, max=100.0, step=0.1)
            self.fps_in = gui.add_number("FPS", initial_value=24.0, min=1, max=60, step=1)
            self.height_in = gui.add_number("Video height", initial_value=360.0, min=32, max=1080, step=2)
            self.render_btn = gui.add_button("Render video")
        g = tab.guarded
        self.add_btn.on_click(g(self._on_add))
        self.clear_btn.on_click(g(self._on_clear))
        self.render_btn.on_click(g(self._on_render))

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
        seconds = clamped_number(self.seconds_in, 0.1, 100.0)
        fps = int(clamped_number(self.fps_in, 1, 60, integer=True))
        height = int(clamped_number(self.height_in, 32, 1080, integer=True)) // 2 * 2
        frames = min(max(2, round(seconds * fps)), MAX_VIDEO_FRAMES)
        probe = self.tab.camera(height)
        aspect = probe.width / probe.height if probe is not None else 16 / 9
        width = max(2, round(height * aspect) // 2 * 2)  # H.264 wants even sizes
        cameras = path_cameras(self.keyframes, frames, width, height)
        session, mode = self.tab.session, self.tab.view_mode
        note = event.client.add_notification(
            "Rendering video", f"{frames} frames at {width}x{height} ...", loading=True, with_close_button=False
        )
        try:
            import tempfile
            from pathlib import Path

            if session.output_dir is not None:
                path = write_mp4(
                    session.output_path("camera_path.mp4"), cameras, lambda c: session.render(c, mode), fps
                )
            else:
                path = write_mp4(
                    Path(tempfile.mkdtemp(prefix="ovseg-video-")) / "camera_path.mp4",
                    cameras,
                    lambda c: session.render(c, mode),
                    fps,
                )
            data = path.read_bytes()
        finally:
            note.remove()
        event.client.send_file_download(path.name, data)
        if session.output_dir is None:
            path.unlink(missing_ok=True)
            path.parent.rmdir()
