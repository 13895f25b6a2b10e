"""Frames a moving camera gets from a running viewer, measured end to end over the network:

- a raw viser client (Python websocket speaking viser's protocol: msgpack camera messages in,
  zstd-compressed msgpack windows out) that streams camera updates at a fixed rate along an orbit
  and counts the background images that come back;
- headless Chromium (playwright, /usr/bin/chromium) whose mouse drags the camera, counting the
  frames the server sends that tab while the drag lasts.

Everything talks over 127.0.0.1 and every loop is bounded in time and count.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ovseg_core.camera import Camera


def viser_camera_message(camera: Camera, width: int, height: int) -> dict[str, Any]:
    """A ``ViewerCameraMessage`` (what viser's browser client sends) for ``camera`` seen in a
    ``width`` x ``height`` canvas."""
    from scipy.spatial.transform import Rotation

    c2w = camera.c2w
    x, y, z, w = Rotation.from_matrix(c2w[:3, :3]).as_quat()
    fov = 2 * math.atan(0.5 * camera.height / camera.K[1, 1])
    position = c2w[:3, 3]
    return {
        "type": "ViewerCameraMessage",
        "wxyz": (float(w), float(x), float(y), float(z)),
        "position": tuple(float(v) for v in position),
        "fov": fov,
        "near": 0.01,
        "far": 1000.0,
        "image_height": int(height),
        "image_width": int(width),
        "look_at": tuple(float(v) for v in position + c2w[:3, 2]),
        "up_direction": tuple(float(v) for v in -c2w[:3, 1]),
    }


def _background_images(raw: bytes) -> int:
    """How many background images one server window carries."""
    import msgspec
    import zstandard

    size, compressed = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:16], "little")
    inner = zstandard.ZstdDecompressor().decompress(raw[16 : 16 + compressed], max_output_size=size)
    messages = msgspec.msgpack.decode(inner)["messages"]
    return sum(1 for m in messages if m.get("type") == "BackgroundImageMessage" and m.get("rgb_data"))


def raw_client_fps(
    port: int, cameras: list[Camera], *, width: int, height: int, rate_hz: float = 60.0, seconds: float = 6.0,
    warmup_s: float = 2.0, first_frame_s: float = 120.0, on_measured: Callable[[], Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Frames/s a raw viser client on ``port`` receives while it sends ``cameras`` (looping) at
    ``rate_hz``: counted for ``seconds``, from ``warmup_s`` after the first frame came (which
    may take up to ``first_frame_s``: the tab is built and the renderer compiled). ``on_measured``
    runs before the client leaves (its result is returned as ``"measured"``)."""
    import msgspec
    import viser
    from websockets.sync.client import connect

    ws = connect(f"ws://127.0.0.1:{port}", subprotocols=[f"viser-v{viser.__version__}"], max_size=None, open_timeout=30)
    stop = threading.Event()
    sent = [0]

    def send() -> None:
        period, nxt = 1.0 / rate_hz, time.perf_counter()
        max_sends = int((first_frame_s + warmup_s + seconds + 5) * rate_hz)
        while not stop.is_set() and sent[0] < max_sends:
            ws.send(msgspec.msgpack.encode(viser_camera_message(cameras[sent[0] % len(cameras)], width, height)))
            sent[0] += 1
            nxt += period
            time.sleep(max(0.0, nxt - time.perf_counter()))

    sender = threading.Thread(target=send, daemon=True, name="bench-camera-sender")
    started = time.perf_counter()
    sender.start()
    frames, frame_bytes, measured = 0, 0, None
    measure_from, end = math.inf, started + first_frame_s
    try:
        while (now := time.perf_counter()) < end:
            try:
                raw = ws.recv(timeout=max(0.01, end - now))
            except TimeoutError:
                break
            n = _background_images(raw) if isinstance(raw, bytes) else 0
            if n and measure_from == math.inf:  # the first frame: warm up, then count
                measure_from = time.perf_counter() + warmup_s
                end = measure_from + seconds
            elif n and time.perf_counter() >= measure_from:
                frames += n
                frame_bytes += len(raw)
        measured = on_measured() if on_measured is not None else None
    finally:
        stop.set()
        sender.join(timeout=5)
        ws.close()
    if measure_from == math.inf:
        raise RuntimeError(f"no frame came within {first_frame_s:.0f} s")
    return {
        "frames_per_s": frames / seconds,
        "camera_messages_per_s": sent[0] / (time.perf_counter() - started),
        "kb_per_frame": frame_bytes / max(frames, 1) / 1024,
        "measured": measured,
    }


@contextlib.contextmanager
def headless_chromium(width: int, height: int) -> Iterator[Any]:
    """A headless Debian Chromium page (``width`` x ``height`` window) in a throwaway profile; yields
    None without /usr/bin/chromium or playwright (the benches then skip their browser part)."""
    import os
    import shutil
    import tempfile

    if not os.access("/usr/bin/chromium", os.X_OK):
        yield None
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        yield None
        return
    profile = tempfile.mkdtemp(prefix="ovseg-bench-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile,
                executable_path="/usr/bin/chromium",
                headless=True,
                viewport={"width": width, "height": height},
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
            )
            try:
                yield ctx.pages[0] if ctx.pages else ctx.new_page()
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def first_tab(viewer: Any, page: Any, timeout: float = 60.0) -> Any:
    """The viewer's tab of ``page`` once it has sent a frame (None if none came in ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not (viewer.tabs and next(iter(viewer.tabs.values())).frames) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    return next(iter(viewer.tabs.values()), None)


def chromium_drag_fps(viewer: Any, *, width: int, height: int, seconds: float = 6.0) -> dict | None:
    """Frames/s the server sends a headless Chromium tab (``width`` x ``height`` window) while
    its mouse drags the camera round in circles, the camera updates/s it got from the tab and the
    moving frames' profile; None without Chromium or playwright."""
    with headless_chromium(width, height) as page:
        if page is None:
            return None
        page.goto(viewer.url)
        page.locator("canvas[data-engine]").wait_for(state="visible", timeout=60_000)
        tab = first_tab(viewer, page)
        if tab is None:
            return None
        tab.profile.clear()
        frames, updates, started = tab.frames, tab.camera_updates, time.perf_counter()
        # Pointer events dispatched inside the page at 60 Hz, as a hand on a mouse would make
        # them: driving each move over the devtools protocol waits for the busy page every time.
        steps = page.evaluate(_DRAG_JS, {"seconds": seconds})
        elapsed = time.perf_counter() - started
        return {
            "frames_per_s": (tab.frames - frames) / elapsed,
            "camera_updates_per_s": (tab.camera_updates - updates) / elapsed,
            "mouse_moves_per_s": steps / elapsed,
            "moving_frame_ms": tab.profile.summary(moving=True),
        }


_DRAG_JS = """async ({seconds}) => {
  const canvas = document.querySelector("canvas[data-engine]");
  const box = canvas.getBoundingClientRect();
  const cx = box.left + box.width / 2, cy = box.top + box.height / 2, r = 0.15 * Math.min(box.width, box.height);
  const fire = (type, x, y) => canvas.dispatchEvent(new PointerEvent(type, {
    clientX: x, clientY: y, pointerId: 1, pointerType: "mouse", button: 0, buttons: type === "pointerup" ? 0 : 1,
    bubbles: true, cancelable: true, isPrimary: true,
  }));
  fire("pointerdown", cx + r, cy);
  let steps = 0;
  const end = performance.now() + 1000 * seconds;
  await new Promise((done) => {
    const timer = setInterval(() => {
      const a = 2 * Math.PI * steps / 60;
      fire("pointermove", cx + r * Math.cos(a), cy + 0.5 * r * Math.sin(a));
      steps += 1;
      if (performance.now() >= end || steps > 100000) { clearInterval(timer); done(); }
    }, 16);
  });
  fire("pointerup", cx + r, cy);
  return steps;
}"""


def orbit_for(scene: Any, frames: int, width: int, height: int) -> list[Camera]:
    """An orbit around ``scene``'s bulk (its detected up axis), where the viewer's reset puts the camera."""
    from ovseg_core.orientation import default_orbit

    return default_orbit(scene, frames, radius_scale=0.6, width=width, height=height, fov_y_deg=60)


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90))} if len(a) else {}


def stream_report(
    scene: Any, *, window: tuple[int, int], seconds: float, chromium: bool, warmup_s: float = 2.0
) -> dict:
    """Serve ``scene`` (CPU renderer, still frames up to 720 px like ``ovseg-view``) and measure the
    raw client's frames/s with the per-stage profile of its moving frames, then Chromium's."""
    import contextlib
    import io
    import os
    import socket
    import tempfile

    from ovseg_app.viewer.server import Viewer
    from ovseg_app.viewer.session import ViewerSession
    from ovseg_core.render import make_renderer

    width, height = window
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="ovseg-bench-stream-") as out:
        session = ViewerSession(scene, make_renderer("cpu"), output_dir=out)
        with contextlib.redirect_stdout(io.StringIO()):  # viser's banner
            viewer = Viewer(session, port=port, still_height=720)
        try:
            load_before = os.getloadavg()[0]

            def measured() -> dict:
                tab = next(iter(viewer.tabs.values()))
                kernel = getattr(session.renderer, "last_timings", {}) or {}
                return {
                    "moving_frame_ms": tab.profile.summary(moving=True),
                    "kernel_ms_last_frame": {k: round(1000 * v, 2) for k, v in kernel.items()},
                    "last_frame": f"{tab.last_camera.width}x{tab.last_camera.height}" if tab.last_camera else None,
                }

            cams = orbit_for(scene, 240, width, height)
            raw = raw_client_fps(port, cams, width=width, height=height, seconds=seconds, warmup_s=warmup_s,
                                 on_measured=measured)  # fmt: skip
            result = {"gaussians": scene.num_gaussians, "window": f"{width}x{height}", **raw.pop("measured"), **raw}
            result["chromium_drag"] = (
                chromium_drag_fps(viewer, width=width, height=height, seconds=seconds) if chromium else None
            )
            result["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            result["cpu_count"] = os.cpu_count()
            return result
        finally:
            with contextlib.redirect_stdout(io.StringIO()):
                viewer.stop()


def garden_capture() -> Any | None:
    """The real garden points (138,766, ../shared/data) as Gaussians turned into COLMAP's y-down
    convention, like a real INRIA capture; None when the data is absent."""
    from pathlib import Path

    from ovseg_core.orientation import rotate_scene, rotation_to
    from ovseg_core.synthetic import scene_from_points

    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsplat_test_garden" / "test_garden.npz"
    if not path.exists():
        return None
    data = np.load(path)
    return rotate_scene(scene_from_points(data["means3d"], data["colors"]), rotation_to((0, 0, 1), (0, -1, 0)))
