"""One client cannot starve the others or flood the log: its GUI updates coalesce per widget and
run in its own tab's render loop (never in viser's shared thread pool), prompts are encoded at
most once per frame, and an error it repeats is logged once, in one line when it is bad input.

Raw viser clients over 127.0.0.1 (``benchmarks.view_flood``), bounded in count; the frame rates
themselves are measured by ``python -m benchmarks.view_flood``, not here.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest

from benchmarks.view_flood import RawClient, backlog
from benchmarks.view_stream import viser_camera_message
from ovseg_app.viewer.server import Viewer
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.camera import Camera
from ovseg_core.errors import UsageError
from ovseg_core.render import make_renderer


class CountingEncoder:
    """The demo's text encoder, counting its calls."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.name, self.embed_dim, self.calls = inner, inner.name, inner.embed_dim, 0

    def encode_texts(self, texts):  # noqa: ANN001, ANN201
        self.calls += 1
        return self.inner.encode_texts(texts)


@pytest.fixture(scope="module")
def demo():
    from ovseg_app.viewer.cli import ViewCommand, load_session_inputs

    scene, fields, encoder, note = load_session_inputs(ViewCommand())
    assert fields is not None, note
    return scene, fields, encoder


@pytest.fixture
def viewer(demo, tmp_path):
    scene, fields, encoder = demo
    session = ViewerSession(
        scene, make_renderer("cpu"), fields=fields, text_encoder=CountingEncoder(encoder), output_dir=tmp_path
    )
    v = Viewer(session, port=0, still_height=120, restore=False)
    yield v
    v.stop()


def wait_until(condition, what: str, timeout: float = 60.0):  # noqa: ANN001, ANN201
    end = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


def camera() -> Camera:
    return Camera.look_at([0.0, -3.0, 1.5], [0.0, 0.0, 0.3], width=160, height=120)


def connect(viewer: Viewer) -> tuple[RawClient, object]:
    """A raw client with a camera, and its tab once it has a frame."""
    known = set(viewer.tabs)
    client = RawClient(viewer.port)
    client.send(viser_camera_message(camera(), 160, 120))  # viser builds the tab on the first camera
    tab = wait_until(lambda: next((t for i, t in viewer.tabs.items() if i not in known), None), "tab")
    wait_until(lambda: tab.frames > 0 and client.frames > 0, "first frame")
    return client, tab


def test_a_flood_of_gui_updates_is_coalesced_and_leaves_no_backlog(viewer):
    bystander, watched = connect(viewer)
    flooder, tab = connect(viewer)
    p = tab.panels.prompt
    widgets = [p.threshold_in, p.cmap_in, p.prompt_in]
    encoder = viewer.session.text_encoder
    frames_before, encodes_before = tab.frames, encoder.calls
    orbit = [Camera.look_at([3.0 * s, -3.0, 1.5], [0, 0, 0.3], width=160, height=120) for s in (-1, 1)]
    seen_frames, most_waiting = bystander.frames, 0
    try:
        for i in range(20_000):  # bounded: until the bystander has had new frames while the flood goes on
            flooder.gui_update(p.threshold_in._impl.uuid, 0.3 + 0.01 * (i % 40))
            flooder.gui_update(p.cmap_in._impl.uuid, ("hot", "gray", "turbo")[i % 3])
            flooder.gui_update(p.prompt_in._impl.uuid, f"thing {i}")
            if i % 100 == 0:  # the bystander keeps orbiting meanwhile
                bystander.send(viser_camera_message(orbit[(i // 100) % 2], 160, 120))
                most_waiting = max(most_waiting, backlog(viewer, tab))
                if i >= 3000 and bystander.frames >= seen_frames + 2:
                    break
        flooder.gui_update(p.threshold_in._impl.uuid, 0.77)
        flooder.gui_update(p.prompt_in._impl.uuid, "mug")
        # the bystander got frames while the flood was sent, and the flooder's work drains
        assert bystander.frames >= seen_frames + 2
        wait_until(lambda: tab.session.prompt.threshold == 0.77 and tab.session.prompt.positives == ("mug",), "last")
        wait_until(lambda: backlog(viewer, tab) == 0, "drained")
        wait_until(lambda: tab.frame_version == tab.version and "0.77" in tab.panels.prompt.stats_md.content, "shown")
    finally:
        flooder.close()
    # nothing waited in viser's shared pool, at most one pending update per widget in the tab
    assert most_waiting <= len(widgets)
    # each prompt applied was encoded once and shown in a frame: no encode without a frame
    assert encoder.calls - encodes_before <= tab.frames - frames_before
    assert tab.applied <= tab.inbox.received
    frames = bystander.frames
    bystander.send(viser_camera_message(Camera.look_at([0.0, 3.0, 1.5], [0, 0, 0.3], width=160, height=120), 160, 120))
    wait_until(lambda: bystander.frames > frames, "bystander frame after the flood")
    assert watched.alive and viewer.errors == []
    bystander.close()


def test_a_zero_quaternion_camera_is_refused_in_one_line_and_the_last_good_one_kept(viewer, caplog):
    client, tab = connect(viewer)
    good = tab.camera(120)
    bad = dict(viser_camera_message(camera(), 160, 120), wxyz=(0.0, 0.0, 0.0, 0.0))
    with caplog.at_level(logging.ERROR, logger="ovseg.viewer"):
        updates = tab.camera_updates
        client.send(bad)
        wait_until(lambda: tab.camera_updates > updates and tuple(tab.client.camera.wxyz) == (0, 0, 0, 0), "bad camera")
        for _ in range(20):  # the render loop asks about ten times a second; so do we
            assert tab.camera(120) == good
        client.close()
        wait_until(lambda: not tab.alive, "tab closed")
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("error in camera: the camera's rotation quaternion is zero") == 1, lines
    assert not any("Traceback" in line for line in lines)
    assert viewer.errors == []  # refused quietly: the client keeps its last good view


def test_a_repeated_bad_dropdown_value_is_logged_once_in_one_line(viewer, caplog):
    client, tab = connect(viewer)
    view = tab.panels.prompt.view_in
    with caplog.at_level(logging.ERROR, logger="ovseg.viewer"):
        for _ in range(5):  # the refusal resets the widget, so each one is a change viser passes on
            received = tab.inbox.received
            client.gui_update(view._impl.uuid, "x-ray")
            wait_until(lambda: tab.inbox.received > received and view.value == "relevancy", "reset")  # noqa: B023
        client.gui_update(view._impl.uuid, "rgb")
        wait_until(lambda: tab.view_mode == "rgb", "a good value still works")
    client.close()
    lines = [r.getMessage() for r in caplog.records]
    said = [line for line in lines if "x-ray" in line]
    assert len(said) == 1 and said[0].startswith("error in _on_view: 'x-ray' is not one of "), lines
    assert not any("Traceback" in line for line in lines)
    assert len(viewer.errors) == 1 and "x-ray" in viewer.errors[0]


def test_report_error_counts_repeats_per_client_and_place(viewer, caplog):
    told: list[str] = []
    client = SimpleNamespace(client_id=7, add_notification=lambda title, body, **kw: told.append(body))

    def bad_input(name: str) -> None:
        raise UsageError(f"no such file: {name}")

    def bug() -> None:
        raise RuntimeError("broken")

    with caplog.at_level(logging.ERROR, logger="ovseg.viewer"):
        for _ in range(3):
            viewer.guarded(bad_input, client)("x.txt")
        viewer.guarded(bug, client)()
        viewer.guarded(bug, client)()
        viewer.guarded(bad_input, SimpleNamespace(client_id=8, add_notification=lambda *a, **k: None))("x.txt")
        viewer.guarded(bad_input, client)("y.txt")  # a new error there: the count of the last, then it
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "error in bad_input: no such file: x.txt"
    assert lines[1].startswith("error in bug:\nTraceback") and lines[1].count("RuntimeError: broken") == 1
    assert lines[2] == "error in bad_input: no such file: x.txt"  # another client's first
    assert lines[3:] == [
        "(the previous error in bad_input from client 7 came 2 more times)",
        "error in bad_input: no such file: y.txt",
    ]
    assert told == ["no such file: x.txt", "broken", "no such file: y.txt"]


def test_the_inbox_keeps_the_newest_value_per_widget_and_a_bounded_queue_of_events(caplog):
    from ovseg_app.viewer.client_inbox import ClientInbox

    woken, ran = [], []
    inbox = ClientInbox("client 3", lambda: woken.append(1), max_events=4)
    for value in range(100):
        inbox.latest("threshold", ran.append, ("threshold", value))
        inbox.latest("colormap", ran.append, ("colormap", value % 3))
    with caplog.at_level(logging.WARNING, logger="ovseg.viewer"):
        kept = [inbox.event(ran.append, ("click", i)) for i in range(10)]
    assert kept == [True] * 4 + [False] * 6 and inbox.dropped == 6
    assert [r.getMessage() for r in caplog.records] == [
        "client 3 sends events faster than its tab handles them; dropping the excess"
    ]
    assert inbox.pending() == 2 + 4 and len(woken) == 1 and inbox.received == 210
    assert inbox.drain() == 2 and ran == [("threshold", 99), ("colormap", 0)]
    assert inbox.drain() == 0
    ran.clear()
    inbox.run_events(lambda: len(ran) < 4)
    assert ran == [("click", i) for i in range(4)] and inbox.pending() == 0
