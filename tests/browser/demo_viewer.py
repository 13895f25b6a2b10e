"""The built-in demo served for browser tests: a fresh ``Viewer`` on the demo scene and its shipped
fields, and a page opened on it once its first frame has arrived."""

from __future__ import annotations

from harness import close_notifications, free_port, wait_for_viser, wait_until

from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
from ovseg_app.viewer.server import Viewer
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.render import make_renderer

READY = "Clear selection"
"""A label the page shows once viser has built the panels."""


def demo_inputs() -> tuple:
    """(scene, fields, text encoder) of the built-in demo, as ``ovseg-view`` loads them."""
    scene, fields, encoder, note = load_session_inputs(ViewCommand())
    assert fields is not None, f"demo fields missing: {note}"
    return scene, fields, encoder


def start_viewer(demo: tuple, output_dir, still_height: int = 240) -> Viewer:
    scene, fields, encoder = demo
    session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=output_dir)
    return Viewer(session, host="127.0.0.1", port=free_port(), still_height=still_height)


def open_page(page, viewer: Viewer):
    """Open ``viewer`` in ``page``; returns the server-side Tab once it has sent a frame."""
    wait_for_viser(page, viewer.url, ready_text=READY)
    tab = wait_until(lambda: next(iter(viewer.tabs.values()), None), what="tab", page=page)
    wait_until(lambda: tab.frames > 0, what="first frame", timeout=30, page=page)
    close_notifications(page)
    return tab
