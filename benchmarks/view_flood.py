"""One tab flooding the viewer while another orbits: what the bystander's frame rate is before,
during and after the flood, and whether the flooder's own work drains when it stops.

Both are raw viser clients over 127.0.0.1 (``view_stream``'s protocol): the bystander streams an
orbit at 60 camera messages/s and counts the frames that come back; the flooder sends GUI updates
(threshold, colormap and view mode, or new prompts) as fast as it can, bounded in count and time.

    python -m benchmarks.view_flood [gui] [prompt]

What the viewer bounds: the flooder's callbacks (the newest value per widget, applied once per
frame in its own tab: ``flooder_applied``) and its prompt encodings (at most one per frame). What
it cannot: viser decodes and dispatches every message on its one event loop, for all clients,
with no per-connection back-pressure, so while a flood lasts that loop (and the interpreter lock)
is what the bystander waits for, and ``drain_s`` is the time the server takes to read what the
flooder already sent.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
import time
from typing import Any

from benchmarks.view_stream import _background_images, viser_camera_message

SENTINEL = 0.123
"""The threshold the flooder sends last (no flood sends it)."""


class RawClient:
    """A viser client without a browser: counts the background images it receives (in a reader
    thread) and sends camera or GUI messages. Loopback only; ``close`` ends it."""

    def __init__(self, port: int) -> None:
        import viser
        from websockets.sync.client import connect

        self.ws = connect(
            f"ws://127.0.0.1:{port}", subprotocols=[f"viser-v{viser.__version__}"], max_size=None, open_timeout=30
        )
        self.frames = 0
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True, name="bench-raw-reader")
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self.ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - the connection closed
                return
            if isinstance(raw, bytes):
                self.frames += _background_images(raw)

    def send(self, message: dict[str, Any]) -> None:
        import msgspec

        self.ws.send(msgspec.msgpack.encode(message))

    def gui_update(self, uuid: str, value: Any) -> None:
        self.send({"type": "GuiUpdateMessage", "uuid": uuid, "updates": {"value": value}})

    def close(self) -> None:
        self._stop.set()
        self.ws.close()
        self._reader.join(timeout=5)


def gui_flood(tab: Any, kind: str) -> itertools.cycle:
    """(uuid, value) GUI updates a flooding client sends: cheap ones (threshold, colormap, view
    mode) or new prompts (each a text encoding and a relevancy pass once applied)."""
    p = tab.panels.prompt
    if kind == "prompt":
        return itertools.cycle((p.prompt_in._impl.uuid, f"thing {i}") for i in range(1000))
    cheap = [(p.threshold_in._impl.uuid, 0.3 + 0.01 * (i % 40)) for i in range(40)]
    cheap += [(p.cmap_in._impl.uuid, c) for c in ("hot", "turbo", "gray")]
    cheap += [(p.view_in._impl.uuid, v) for v in ("relevancy", "rgb")]
    return itertools.cycle(cheap)


def flood(client: RawClient, updates: itertools.cycle, seconds: float, max_messages: int = 200_000) -> int:
    """Send ``updates`` as fast as the socket takes them for ``seconds`` (or ``max_messages``); returns how many."""
    sent, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end and sent < max_messages:
        uuid, value = next(updates)
        client.gui_update(uuid, value)
        sent += 1
    return sent


def fps_over(client: RawClient, seconds: float) -> float:
    start, t0 = client.frames, time.perf_counter()
    time.sleep(seconds)
    return (client.frames - start) / (time.perf_counter() - t0)


@dataclasses.dataclass
class FloodResult:
    before: float
    during: float
    after: float
    """The bystander's frames/s before, during and right after the flood (the same span each)."""
    sent_per_s: float
    flooder_applied: int
    flooder_frames: int
    drain_s: float
    """Seconds from the flood's end until the server had handled all of it (its last value shown)."""
    load: tuple[float, float, float]


def run(viewer: Any, kind: str = "gui", seconds: float = 5.0, width: int = 640, height: int = 360) -> FloodResult:
    """Measure on a running ``viewer`` (``ovseg_app.viewer.server.Viewer``); both clients run in
    another process, so they do not share the server's interpreter lock."""
    import multiprocessing

    from ovseg_core.camera import orbit_cameras

    scene = viewer.session.base_scene
    centre = scene.means.mean(0).tolist()
    radius = 2.5 * float((scene.means - scene.means.mean(0)).norm(dim=1).quantile(0.9))
    cameras = [
        viser_camera_message(c, width, height) for c in orbit_cameras(centre, radius, 240, width=width, height=height)
    ]
    ctx = multiprocessing.get_context("spawn")
    conn, child_conn = ctx.Pipe()
    child = ctx.Process(target=_clients, args=(child_conn, viewer.port, cameras, seconds), daemon=True)
    child.start()
    try:
        _recv(conn, 120)  # both clients sent their first camera
        _wait(lambda: len(viewer.tabs) >= 2, 120)
        tab = viewer.tabs[max(viewer.tabs)]
        updates = gui_flood(tab, kind)
        conn.send(([next(updates) for _ in range(1000)], tab.panels.prompt.threshold_in._impl.uuid))
        sent = _recv(conn, 300)
        ended = time.perf_counter()  # the flood ended and its last, distinct value was sent: once the
        # tab shows it, the server has handled everything sent before
        _wait(lambda: tab.session.prompt.threshold == SENTINEL and backlog(viewer, tab) == 0, 300)
        drain = time.perf_counter() - ended
        conn.send("drained")
        before, during, after = _recv(conn, 120)
        applied = getattr(tab, "applied", -1)
        return FloodResult(before, during, after, sent / seconds, applied, tab.frames, drain, os.getloadavg())
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()


def _recv(conn: Any, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError("the bench clients did not answer in time")
    return conn.recv()


def _clients(conn: Any, port: int, cameras: list[dict], seconds: float) -> None:
    """The bench's two clients (in their own process): the bystander orbits, the flooder sends what
    the parent hands it; frames/s before, during and after the flood go back through ``conn``."""
    bystander, flooder = RawClient(port), RawClient(port)
    stop = threading.Event()
    try:
        for client in (bystander, flooder):  # viser builds a client's tab on its first camera message
            client.send(cameras[0])
        conn.send("connected")
        updates, sentinel_uuid = conn.recv()

        def orbit() -> None:  # 60 camera messages/s
            nxt, i = time.perf_counter(), 0
            while not stop.is_set():
                bystander.send(cameras[i % len(cameras)])
                i += 1
                nxt += 1 / 60
                stop.wait(max(0.0, nxt - time.perf_counter()))

        threading.Thread(target=orbit, daemon=True).start()
        _wait(lambda: bystander.frames > 0, 120)
        time.sleep(2.0)  # warm up
        before = fps_over(bystander, seconds)
        counted: list[float] = []
        measuring = threading.Thread(target=lambda: counted.append(fps_over(bystander, seconds)))
        measuring.start()
        sent = flood(flooder, itertools.cycle(updates), seconds)
        measuring.join()
        flooder.gui_update(sentinel_uuid, SENTINEL)
        conn.send(sent)
        conn.recv()  # drained
        conn.send((before, counted[0], fps_over(bystander, seconds)))
    finally:
        stop.set()
        bystander.close()
        flooder.close()


def backlog(viewer: Any, tab: Any) -> int:
    """Callbacks waiting: in viser's shared thread pool (every client's) and in ``tab``'s inbox."""
    inbox = getattr(tab, "inbox", None)
    return viewer.server._thread_executor._work_queue.qsize() + (inbox.pending() if inbox is not None else 0)


def _wait(condition: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the viewer did not answer in time")
        time.sleep(0.01)


def main() -> None:
    """Serve the built-in demo and print one JSON line per flood kind."""
    import json
    import sys
    import tempfile

    from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
    from ovseg_app.viewer.server import Viewer
    from ovseg_app.viewer.session import ViewerSession
    from ovseg_core.render import make_renderer

    kinds = sys.argv[1:] or ["gui", "prompt"]
    scene, fields, encoder, _ = load_session_inputs(ViewCommand())
    for kind in kinds:
        with tempfile.TemporaryDirectory() as out:
            session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=out)
            viewer = Viewer(session, port=0, restore=False)
            try:
                print(json.dumps({"kind": kind, **dataclasses.asdict(run(viewer, kind))}), flush=True)
            finally:
                viewer.stop()


if __name__ == "__main__":
    main()
