"""The browser harness drives a real viser server: GUI input, streamed background image, scene
clicks, file downloads and several clients."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pytest
from harness import (
    canvas_pixels,
    click_button,
    click_canvas,
    close_notifications,
    expect_download,
    free_port,
    screenshot,
    select_dropdown,
    set_slider,
    set_text_input,
    wait_for_viser,
    wait_until,
)

viser = pytest.importorskip("viser")

PLY_BYTES = b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n"


def split_image(h: int = 240, w: int = 320) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (255, 0, 0)
    img[:, w // 2 :] = (0, 0, 255)
    return img


@dataclass
class Demo:
    server: viser.ViserServer
    url: str
    prompt: object
    threshold: object
    mode: object
    prompts: list = field(default_factory=list)
    clicks: list = field(default_factory=list)
    connected: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def demo():
    port = free_port()
    server = viser.ViserServer(host="127.0.0.1", port=port, verbose=False)
    d = Demo(
        server=server,
        url=f"http://127.0.0.1:{port}/",
        prompt=server.gui.add_text("Prompt", initial_value=""),
        threshold=server.gui.add_slider("Threshold", min=0.0, max=1.0, step=0.01, initial_value=0.5),
        mode=server.gui.add_dropdown("Mode", options=("relevancy", "mask", "rgb")),
    )
    export = server.gui.add_button("Export")

    @d.prompt.on_update
    def _(event) -> None:
        with d.lock:
            d.prompts.append((event.client_id, d.prompt.value))

    @export.on_click
    def _(event) -> None:
        event.client.send_file_download("x.ply", PLY_BYTES)

    @server.on_client_connect
    def _(client) -> None:
        d.connected.append(client.client_id)
        client.scene.set_background_image(split_image(), format="png")

    # Registered before any page connects; registering after a client connected works as well.
    @server.scene.on_click()
    def _(event) -> None:
        with d.lock:
            d.clicks.append((event.client_id, tuple(event.screen_pos)))

    yield d
    server.stop()


def test_gui_input_reaches_server(demo, browser_page):
    page = browser_page
    wait_for_viser(page, demo.url)
    set_text_input(page, "Prompt", "a red chair")
    wait_until(lambda: demo.prompt.value == "a red chair", timeout=10, what="Prompt on_update", page=page)
    assert demo.prompts[-1][1] == "a red chair"
    set_slider(page, "Threshold", 0.73)
    wait_until(lambda: abs(demo.threshold.value - 0.73) < 1e-6, timeout=10, what="slider", page=page)
    select_dropdown(page, "Mode", "mask")
    wait_until(lambda: demo.mode.value == "mask", timeout=10, what="dropdown", page=page)


def test_background_image_click_and_download(demo, browser_page, artifact_dir, tmp_path):
    page = browser_page
    wait_for_viser(page, demo.url)

    # The per-client background image (red | blue) is drawn by WebGL, stretched over the canvas.
    rgb = wait_until(
        lambda: (lambda a: a if a[..., 0].mean() > 100 and a[..., 2].mean() > 100 else None)(canvas_pixels(page)),
        timeout=10,
        what="background image on the canvas",
        page=page,
    )
    screenshot(page, artifact_dir / "viewer.png")
    h, w, _ = rgb.shape
    assert (h, w) == (700, 1000)
    left = rgb[h // 4 : 3 * h // 4, w // 10 : 4 * w // 10].reshape(-1, 3).astype(float)
    right = rgb[h // 4 : 3 * h // 4, 6 * w // 10 : 9 * w // 10].reshape(-1, 3).astype(float)
    np.testing.assert_allclose(np.median(left, axis=0), (255, 0, 0), atol=8)
    np.testing.assert_allclose(np.median(right, axis=0), (0, 0, 255), atol=8)
    assert (np.abs(left - (255, 0, 0)).max(axis=1) < 16).mean() > 0.99
    assert (np.abs(right - (0, 0, 255)).max(axis=1) < 16).mean() > 0.99

    # A canvas click reaches scene.on_click with screen_pos in 0..1 image coordinates.
    click_canvas(page, 0.3, 0.6)
    wait_until(lambda: demo.clicks, timeout=10, what="scene on_click", page=page)
    _, (sx, sy) = demo.clicks[-1]
    assert abs(sx - 0.3) < 0.01 and abs(sy - 0.6) < 0.01
    # The "Software WebGL" toast covers the top-left corner until closed.
    page.get_by_text("Software WebGL rendering detected").wait_for(state="visible", timeout=10_000)
    with pytest.raises(RuntimeError, match="covered"):
        click_canvas(page, 0.1, 0.1)
    close_notifications(page)
    click_canvas(page, 0.1, 0.1)
    wait_until(lambda: len(demo.clicks) == 2, timeout=10, what="second click", page=page)

    # send_file_download -> a file with exactly those bytes.
    path = expect_download(page, lambda: click_button(page, "Export"), dest_dir=tmp_path / "dl")
    assert path.name == "x.ply"
    assert path.read_bytes() == PLY_BYTES


def test_two_pages_are_two_clients(demo, chromium):
    a = chromium.pages[0]
    b = chromium.new_page()
    wait_for_viser(a, demo.url)
    wait_for_viser(b, demo.url)
    wait_until(lambda: len(demo.server.get_clients()) == 2, timeout=10, what="two clients", page=a)
    assert len(set(demo.connected)) == 2

    click_canvas(a, 0.2, 0.5)
    wait_until(lambda: len(demo.clicks) == 1, timeout=10, what="click from page a", page=a)
    click_canvas(b, 0.4, 0.5)
    wait_until(lambda: len(demo.clicks) == 2, timeout=10, what="click from page b", page=b)
    (id_a, pos_a), (id_b, pos_b) = demo.clicks
    assert id_a != id_b
    assert {id_a, id_b} == set(demo.server.get_clients())
    assert abs(pos_a[0] - 0.2) < 0.01 and abs(pos_b[0] - 0.4) < 0.01

    # A per-client background image reaches only that client's canvas.
    green = np.zeros((120, 160, 3), np.uint8)
    green[..., 1] = 255
    demo.server.get_clients()[id_b].scene.set_background_image(green, format="png")
    wait_until(lambda: canvas_pixels(b)[350, 500, 1] > 200, timeout=10, what="green on page b", page=b)
    rgb_a = canvas_pixels(a)
    assert tuple(rgb_a[350, 200]) == (255, 0, 0) and tuple(rgb_a[350, 800]) == (0, 0, 255)
    rgb_b = canvas_pixels(b)
    assert tuple(rgb_b[350, 200]) == (0, 255, 0) and tuple(rgb_b[350, 800]) == (0, 255, 0)

    # Text typed on one page reaches the server tagged with that page's client.
    set_text_input(b, "Prompt", "lamp")
    wait_until(lambda: any(v == "lamp" for _, v in demo.prompts), timeout=10, what="prompt from b", page=b)
    assert [cid for cid, v in demo.prompts if v == "lamp"][-1] == id_b
