"""One tab flooding the viewer while another orbits: what the bystander's frame rate is before,
during and after the flood, what the flood costs the server's CPU, and how long the flooder's own
work takes to drain when it stops.

Both are raw viser clients over 127.0.0.1 (``view_stream``'s protocol): the bystander streams an
orbit at 60 camera messages/s and counts the frames that come back; the flooder sends GUI updates
(threshold, colormap and view mode, or new prompts) as fast as its socket takes them, bounded in
count and time.

    python -m benchmarks.view_flood [gui] [prompt] [baseline]

(``baseline``: with viser's own per-connection consumer instead of ``fair_intake``'s.)

What bounds it: ``fair_intake`` reads each connection at a bounded rate and hands its messages to
viser's handlers at a lower one, newer values of a widget replacing waiting ones; past that the
flooder's socket fills and its sends block (``sent_per_s`` is what it got in). The tab's inbox
then applies the newest value per widget once per frame (``flooder_applied``) and encodes at most
one prompt per frame. ``server_cpu`` (cores, the viewer's process) and ``flooder_cpu`` (cores, the
flooding thread) say how much of the 2-core machine each side took in each phase; ``drain_s`` is
how long after the flood the flooder's last value took to be shown (what its socket still held).
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


RECOVERY_S = 2.0
"""The "after" span starts this long after the flood ended."""


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
    """The bystander's frames/s before, during and after the flood (the same span each; "after"
    starts ``RECOVERY_S`` after the flood's end, whether or not the flooder's backlog has drained)."""
    sent_per_s: float
    flooder_applied: int
    flooder_frames: int
    flooder_received: int
    """Updates the flooder's tab was handed by viser (after ``fair_intake`` merged what waited)."""
    drain_s: float
    """Seconds from the flood's end until the server had handled all of it (its last value shown)."""
    server_cpu: tuple[float, float, float]
    """CPU of the viewer's process, in cores, before, during and after the flood."""
    flooder_cpu: float
    """CPU of the flooding thread during the flood, in cores."""
    server_rss_mb: tuple[float, float, float]
    """The viewer's resident memory when the clients had connected, at its peak, and at the end (MiB)."""
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
        cpu = CpuSampler()
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
        (before, during, after), windows, flooder_cpu = _recv(conn, 120)
        cpu.stop()
        applied = getattr(tab, "applied", -1)
        server_cpu = tuple(cpu.cores(*w) for w in windows)
        received = tab.inbox.received
        return FloodResult(
            before,
            during,
            after,
            sent / seconds,
            applied,
            tab.frames,
            received,
            drain,
            server_cpu,
            flooder_cpu,
            (cpu.rss_mb[0], max(cpu.rss_mb), cpu.rss_mb[-1]),
            os.getloadavg(),
        )
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
        windows = [time.time()]
        before = fps_over(bystander, seconds)
        counted: list[float] = []
        measuring = threading.Thread(target=lambda: counted.append(fps_over(bystander, seconds)))
        windows.append(time.time())
        measuring.start()
        flooder_cpu = time.thread_time()
        sent = flood(flooder, itertools.cycle(updates), seconds)
        flooder_cpu = (time.thread_time() - flooder_cpu) / seconds
        measuring.join()
        windows.append(time.time())
        flooder.gui_update(sentinel_uuid, SENTINEL)
        conn.send(sent)
        time.sleep(RECOVERY_S)  # the target: back to its rate this long after the flood, drained or not
        after_start = time.time()
        after = fps_over(bystander, seconds)
        spans = [(windows[0], windows[1]), (windows[1], windows[2]), (after_start, time.time())]
        conn.recv()  # drained
        conn.send(((before, counted[0], after), spans, flooder_cpu))
    finally:
        stop.set()
        bystander.close()
        flooder.close()


class CpuSampler:
    """This process's CPU time and resident memory, sampled every 50 ms in a thread, so a phase's
    share can be read afterwards."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.rss_mb: list[float] = []
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-cpu-sampler")
        self._thread.start()

    def _sample(self) -> None:
        from benchmarks.process_memory import current_rss_mb

        self.samples.append((time.time(), time.process_time()))
        self.rss_mb.append(current_rss_mb())

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cores(self, start: float, end: float) -> float:
        """Mean cores used between wall times ``start`` and ``end``."""
        import numpy as np

        t, cpu = np.array(self.samples).T
        return float((np.interp(end, t, cpu) - np.interp(start, t, cpu)) / max(end - start, 1e-9))


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


DURING_TARGET, AFTER_TARGET = 0.8, 0.95
"""The bystander's frame rate during the flood, and from ``RECOVERY_S`` after it, over its rate before."""


def run_floods(kinds: tuple[str, ...] = ("gui", "prompt"), seconds: float = 5.0, baseline: bool = False) -> list[dict]:
    """Serve the built-in demo once per flood kind; one result dict each, with ``ok`` against the
    targets. ``baseline``: with viser's own consumer instead of ``fair_intake``'s (what it was)."""
    import tempfile

    from ovseg_app.viewer import fair_intake
    from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
    from ovseg_app.viewer.server import Viewer
    from ovseg_app.viewer.session import ViewerSession
    from ovseg_core.render import make_renderer

    scene, fields, encoder, _ = load_session_inputs(ViewCommand())
    rows = []
    for kind in kinds:
        with tempfile.TemporaryDirectory() as out:
            session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=out)
            viewer = Viewer(session, port=0, restore=False)
            if baseline:
                fair_intake.uninstall()  # before any client connects: each connection picks its consumer then
            try:
                r = run(viewer, kind, seconds)
            finally:
                viewer.stop()
        ok = r.during >= DURING_TARGET * r.before and r.after >= AFTER_TARGET * r.before
        rows.append({"kind": kind, "baseline": baseline, "ok": ok, **dataclasses.asdict(r)})
    return rows


def main() -> None:
    """Print one JSON line per flood kind."""
    import json
    import sys

    kinds = tuple(a for a in sys.argv[1:] if a != "baseline") or ("gui", "prompt")
    for row in run_floods(kinds, baseline="baseline" in sys.argv[1:]):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
