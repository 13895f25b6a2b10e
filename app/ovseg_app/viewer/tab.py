"""One browser tab: its own display state (prompt, view mode, selection, camera, frame size), its
own GUI panels, click handlers and render thread.

Everything a client sends is treated as hostile: camera values are checked and clamped before a
frame is sized from them, so one tab can neither make the server allocate huge frames nor flood
anyone with errors; an unusable camera is refused in one line and the tab keeps its last good one.
Its GUI callbacks and clicks only record what was asked (``ClientInbox``): the render loop applies
widget values once per frame and the tab's event thread runs its button presses and clicks, so
however fast a client sends, its work is coalesced or bounded and never queues up in front of
other tabs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ovseg_app.viewer.client_inbox import ClientInbox
from ovseg_app.viewer.frame_budget import MOVING_JPEG_QUALITY, FrameProfile, MovingScale, frame_unsent
from ovseg_app.viewer.heap import trim_heap_now_and_then
from ovseg_app.viewer.panels import build_panels
from ovseg_core.camera import Camera
from ovseg_core.errors import UsageError

if TYPE_CHECKING:
    from ovseg_app.viewer.server import Viewer

log = logging.getLogger("ovseg.viewer")

MOVING_SECONDS = 0.25
"""A camera that changed more recently than this counts as moving (smaller frames, see ``frame_budget``)."""
UNSENT_GRACE_S = 0.01
"""A frame still queued this long after it was flushed means the client is behind."""
MIN_HEIGHT, MAX_HEIGHT = 32, 2160
"""Bounds of a frame's height in pixels, whatever the client or the panel asks for."""
MAX_ASPECT = 4.0
"""Frames are at most this wide (or tall) for their height; a wider canvas gets a cropped view."""
MAX_FRAME_PIXELS = 2560 * 1440
"""Live frames are at most this many pixels (height lowered to fit); screenshots may be larger."""
MIN_FOV, MAX_FOV = math.radians(1.0), math.radians(170.0)
SelectOp = Literal["replace", "add", "remove"]
CLICK_MODIFIERS: dict[str | None, SelectOp] = {None: "replace", "shift": "add", "cmd/ctrl": "remove", "alt": "remove"}
"""viser fires a scene click only for the exact modifier combo it was registered with."""


class Tab:
    """A viser client and everything that is its own."""

    def __init__(self, viewer: Viewer, client: Any) -> None:
        self.viewer = viewer
        self.client = client
        self.session = viewer.session.fork()
        self.view_mode = "relevancy"
        self.granularity = "medium"
        self.display_mode = viewer.display_mode
        self.max_height = viewer.still_height
        self.jpeg_quality = 85
        self.version = 0
        """Bumped when this tab's state changes (the viewer's own ``version`` covers shared state)."""
        self.frames = 0
        self.frame_version = -1
        """The ``version`` the last frame showed (the panels' numbers are from the same state)."""
        self.render_ms: float | None = None
        self.last_camera_change = time.monotonic()
        self.camera_updates = 0
        """Camera messages received from the client."""
        self.moving_scale = MovingScale()
        self.profile = FrameProfile()
        """Per-stage times of recent frames (``ovseg-bench view`` reads it)."""
        self.rendered_key: tuple | None = None
        self.rendered_view: tuple | None = None
        self.queued_at = 0.0
        self.last_frame: np.ndarray | None = None
        self.last_camera: Camera | None = None
        self.good_camera: tuple | None = None
        """The client's last usable (wxyz, position, fov, aspect): kept when it sends an unusable one."""
        self.splats = None
        self._splat_colors: np.ndarray | None = None
        self._splat_hidden: np.ndarray | None = None
        self.wake = threading.Event()
        self.alive = True
        self.inbox = ClientInbox(f"client {client.client_id}", self.wake.set)
        self.applied = 0
        """Widget updates the render loop applied (the newest per widget, once per frame)."""
        self._refresh_due = False
        self.panels = build_panels(self)
        client.camera.on_update(self._on_camera)
        for modifier, op in CLICK_MODIFIERS.items():
            client.scene.on_click(modifier=modifier)(self.guarded(self._click_handler(op)))
        if self.display_mode == "browser":
            self.update_browser_splats()
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"ovseg-client-{client.client_id}")
        self.thread.start()
        self.events_thread = threading.Thread(
            target=self.inbox.run_events,
            args=(lambda: self.alive,),
            daemon=True,
            name=f"ovseg-events-{client.client_id}",
        )
        self.events_thread.start()

    def guarded(self, fn: Any) -> Any:
        """A viser callback that records ``fn`` in this tab's inbox (any exception shown to this
        tab only, see ``Viewer.guarded``). A widget's updates coalesce (``fn`` reads the newest value
        when the render loop runs it); button presses and clicks queue, bounded, for the event thread."""
        from viser import GuiButtonHandle

        run = self.viewer.guarded(fn, self.client)

        async def record(event: Any) -> None:  # a coroutine: viser awaits it on its event loop, no thread pool
            if isinstance(getattr(event, "target", None), GuiButtonHandle) or not hasattr(event, "target"):
                self.inbox.event(run, event)
            else:
                self.inbox.latest(record, run, event)

        record.__name__ = getattr(fn, "__name__", "callback")
        return record

    # -- state changes ---------------------------------------------------------------------------
    def changed(self) -> None:
        """This tab's state changed: its render loop re-renders it and refreshes its browser-side
        colours and what its panels say about the state (once, however many changes came)."""
        self.version += 1
        self._refresh_due = True
        self.wake.set()

    def _refresh(self) -> None:
        self._refresh_due = False
        if self.display_mode == "browser":
            self.update_browser_splats()
        self.panels.prompt.show_stats()

    def edit_selection(self, edit: Any) -> Any:
        """Run ``edit()`` (a session selection edit: it records its own undo step), then show it."""
        result = edit()
        self.panels.selection.show_count()
        self.changed()
        return result

    def undo(self) -> None:
        self.edit_selection(self.session.undo)

    def redo(self) -> None:
        self.edit_selection(self.session.redo)

    # -- clicks and boxes ------------------------------------------------------------------------
    def _click_handler(self, op: SelectOp) -> Any:
        def on_click(event: Any) -> None:
            camera = self.camera(self.frame_height(moving=False))
            if camera is None:
                return
            x, y = _unit_point(event.screen_pos)
            pixel = (x * camera.width, y * camera.height)
            result = self.edit_selection(lambda: self.session.click(camera, pixel, self.granularity, op))
            self.panels.selection.show_click(result)

        on_click.__name__ = f"click_{op}"
        return on_click

    def rect_handler(self, op: SelectOp) -> Any:
        def on_rect(event: Any) -> None:
            camera = self.camera(self.frame_height(moving=False))
            if camera is None:
                return
            (x0, y0), (x1, y1) = _unit_point(event.screen_min), _unit_point(event.screen_max)
            lo, hi = (x0 * camera.width, y0 * camera.height), (x1 * camera.width, y1 * camera.height)
            self.edit_selection(lambda: self.session.select_rect(camera, lo, hi, op))

        on_rect.__name__ = f"rect_select_{op}"
        return on_rect

    # -- frames ----------------------------------------------------------------------------------
    def frame_height(self, *, moving: bool) -> int:
        """The browser's canvas height, capped by the panel's maximum (while moving: a quarter
        to half of it, as the last moving frames' cost allows)."""
        try:
            canvas = int(self.client.camera.image_height)
        except (AssertionError, TypeError, ValueError, OverflowError):  # no camera message yet
            canvas = self.max_height
        height = min(max(canvas, MIN_HEIGHT), self.max_height)
        return self.moving_scale.height(height, MIN_HEIGHT) if moving else height

    def camera(
        self, height: int, *, width: int | None = None, max_height: int = MAX_HEIGHT, max_pixels: int = MAX_FRAME_PIXELS
    ) -> Camera | None:
        """This tab's camera at ``height`` px (and the canvas's aspect, or ``width``): the client's,
        or its last usable one when the client's values are unusable (refused in one line, once),
        or None before it sent any usable one."""
        try:
            wxyz, position, fov, aspect = self.good_camera = _client_camera(self.client.camera)
        except (AssertionError, TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
            if isinstance(e, UsageError):  # said once per client and reason (Viewer.report_error)
                self.viewer.report_error("camera", e, self.client, shown=False)
            if self.good_camera is None:
                return None
            wxyz, position, fov, aspect = self.good_camera
        height = min(max(int(height), MIN_HEIGHT), max_height)
        aspect = min(max(aspect if width is None else width / height, 1.0 / MAX_ASPECT), MAX_ASPECT)
        height = max(MIN_HEIGHT, min(height, int(math.sqrt(max_pixels / aspect))))
        fov = min(max(fov, MIN_FOV), MAX_FOV)
        return Camera.from_viser(wxyz, position, fov, aspect, height)

    async def _on_camera(self, _camera: Any) -> None:
        """Only notes the move (a coroutine: viser runs it on its event loop, no thread pool); the
        loop reads the camera's newest values."""
        self.camera_updates += 1
        self.last_camera_change = time.monotonic()
        self.wake.set()

    def _loop(self) -> None:
        while self.alive:
            self.wake.wait(timeout=0.1)
            self.wake.clear()
            if not self.alive:
                return
            self.applied += self.inbox.drain()
            self.viewer.guarded(self._maybe_render, self.client)()
            if self._refresh_due and (self.display_mode == "browser" or self.last_camera is None):
                self.viewer.guarded(self._refresh, self.client)()  # no frame to wait for

    def _maybe_render(self) -> None:
        if self.display_mode == "browser":
            return
        changed_at = self.last_camera_change
        moving = time.monotonic() - changed_at < MOVING_SECONDS
        height = self.frame_height(moving=moving)
        camera = self.camera(height)
        if camera is None:
            return
        quality = min(self.jpeg_quality, MOVING_JPEG_QUALITY) if moving else self.jpeg_quality
        view = (camera.w2c.round(6).tobytes(), round(float(camera.K[1, 1]) / camera.height, 4))  # pose, fov
        view += (self.view_mode, self.version, self.viewer.version)
        key = (*view[:2], camera.K.round(4).tobytes(), camera.width, camera.height, quality, *view[2:])
        # while moving, a frame is due only for a new view (not for a new size of the same one), and
        # not while the last one is still queued (a newer one would just replace it in viser's queue)
        # once it had time to leave: a client that keeps up gets the next frame rendered right away
        behind = time.perf_counter() - self.queued_at > UNSENT_GRACE_S and frame_unsent(self.client)
        if key == self.rendered_key or (moving and (view == self.rendered_view or behind)):
            if moving:  # re-check soon: the next camera update, or the full-size frame once it settles
                self.wake.set()
                time.sleep(0.002 if view != self.rendered_view else 0.02)
            return
        started = time.perf_counter()
        waited = max(0.0, time.monotonic() - changed_at)
        if self._refresh_due:  # the panels' numbers once per frame, from the state it shows
            self.viewer.guarded(self._refresh, self.client)()
        frame = self.session.render(camera, self.view_mode)
        rendered = time.perf_counter()
        if not self.alive:  # the tab closed while we rendered
            return
        # viser encodes with OpenCV when it is installed (~1 ms for a moving frame; PIL is slower)
        self.client.scene.set_background_image(frame, format="jpeg", jpeg_quality=quality)
        self.client.flush()  # out now: viser would hold it up to a 1/60 s batching window
        self.queued_at = time.perf_counter()
        done = time.perf_counter()
        self.render_ms = 1000 * (done - started)
        if moving:
            self.moving_scale.update(done - started)
        self.profile.add(
            moving, wait=waited, render=rendered - started, encode_send=done - rendered, total=waited + done - started,
            pixels=float(camera.width * camera.height),
        )  # fmt: skip
        self.rendered_key, self.rendered_view, self.last_frame, self.last_camera = key, view, frame, camera
        self.frames += 1
        self.frame_version = view[3]
        self.panels.display.show_render_time()
        trim_heap_now_and_then()
        if moving:
            self.wake.set()

    # -- browser-side display --------------------------------------------------------------------
    def set_display(self, mode: str) -> None:
        self.display_mode = mode
        if mode == "server":
            if self.splats is not None:
                self.splats.remove()
                self.splats, self._splat_colors = None, None
        else:
            self.client.scene.set_background_image(None)
            self.update_browser_splats()
        self.changed()

    def update_browser_splats(self) -> None:
        """Colour the tab's browser-side splats for its view, hidden ones transparent; colours and
        opacities change in place (centres and covariances are sent once, when the splats are first
        shown)."""
        colors = self.session.gaussian_colors(self.view_mode)
        hidden = self.session.hidden
        if self.splats is None:
            self.splats = self.client.scene.add_gaussian_splats(
                "/ovseg/splats", rgbs=colors, **self.viewer.browser_geometry()
            )
            self._splat_hidden = None
        elif self._splat_colors is None or not np.array_equal(self._splat_colors, colors):
            self.splats.rgbs = colors
        if hidden is not self._splat_hidden and (self._splat_hidden is not None or hidden.any()):
            self.splats.opacities = self.viewer.browser_geometry()["opacities"] * ~hidden[:, None]
        self._splat_colors, self._splat_hidden = colors, hidden

    def close(self) -> None:
        """The tab went away: stop its loop and drop its frames and state."""
        self.alive = False
        self.wake.set()
        self.last_frame = None
        self.splats = None


def _client_camera(cam: Any) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A viser client camera's (unit wxyz, position, fov, aspect); a UsageError names what is unusable."""
    wxyz = np.asarray(cam.wxyz, np.float64)
    position = np.asarray(cam.position, np.float64)
    fov, aspect = float(cam.fov), float(cam.aspect)
    if wxyz.shape != (4,) or position.shape != (3,):
        raise UsageError(f"the camera's rotation and position have shapes {wxyz.shape} and {position.shape}")
    if not np.isfinite(np.concatenate([wxyz, position, [fov, aspect]])).all():
        raise UsageError("the camera has values that are not finite numbers")
    norm = float(np.linalg.norm(wxyz))
    if norm < 1e-6:
        raise UsageError("the camera's rotation quaternion is zero")
    if aspect <= 0 or fov <= 0:
        raise UsageError(f"the camera's aspect {aspect:g} and field of view {fov:g} must be positive")
    return wxyz / norm, position, fov, aspect


def _unit_point(p: Any) -> tuple[float, float]:
    """A client-reported screen position, clamped into [0, 1) (NaN -> 0)."""
    x, y = (float(v) for v in p)
    return tuple(min(max(v, 0.0), 0.9999) if math.isfinite(v) else 0.0 for v in (x, y))  # type: ignore[return-value]
