"""A real PlayCanvas SOG (the playbot, stored y-down) in the viewer in Chromium: it opens upright and framed, the
same scene converted to .spz by ovseg opens to the same frame, and the whole scene exported from the Export
panel as SPZ opens in PlayCanvas splat-transform with every Gaussian."""

from __future__ import annotations

import numpy as np
import pytest
from harness import (
    canvas_pixels,
    chromium_available,
    chromium_context,
    click_button,
    close_notifications,
    expect_download,
    free_port,
    select_dropdown,
    skip_reason,
    wait_for_viser,
    wait_until,
)
from PIL import Image
from plyfile import PlyData

from ovseg_app.viewer.server import Viewer
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.io import load_scene, save_scene
from ovseg_core.render import make_renderer

pytestmark = pytest.mark.skipif(not chromium_available(), reason=skip_reason())

VIEWPORT = {"width": 800, "height": 600}
READY = "Clear selection"
LIT = 40
"""A pixel brighter than this (sum of RGB) shows the figure; the background is black."""


@pytest.fixture(scope="module")
def browser():
    with chromium_context(viewport=VIEWPORT) as ctx:
        yield ctx


@pytest.fixture
def playbot(shared_data):
    return shared_data / "playcanvas_playbot_sog_lod3" / "meta.json"


def _open(ctx, scene, out):  # noqa: ANN001, ANN202
    """A viewer on ``scene``, a page on it and its tab once the tab's last frame is full size and still."""
    viewer = Viewer(ViewerSession(scene, make_renderer("cpu"), output_dir=out), port=free_port(), still_height=480)
    page = ctx.new_page()
    wait_for_viser(page, viewer.url, ready_text=READY)
    tab = wait_until(lambda: next(iter(viewer.tabs.values()), None), what="tab", page=page)

    def still() -> bool:
        cam, last = tab.camera(tab.frame_height(moving=False)), tab.last_camera
        return bool(
            last is not None and cam is not None and last.height == cam.height and np.allclose(last.w2c, cam.w2c)
        )

    wait_until(still, what="full-size frame", timeout=60, page=page)
    close_notifications(page)
    return viewer, page, tab


def _head_and_ground(scene, camera) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Where the robot's head and the ground it hovers over land in the image, ``[M, 2]`` (x, y) fractions of the
    width and height each: the Gaussians in the top and bottom tenth of the figure's height along the file's y
    (y-down: the head has the smallest y, the ground sits at y = 0)."""
    y = scene.means.numpy()[:, 1]
    lo, hi = np.quantile(y, [0.01, 0.99])
    pixels, depth = camera.project(scene.means.numpy().astype(np.float64))
    at = pixels / np.array([camera.width, camera.height])
    inside = (depth > 0) & (at >= 0).all(1) & (at < 1).all(1)
    return at[(y < lo + 0.1 * (hi - lo)) & inside], at[(y > hi - 0.1 * (hi - lo)) & inside]


def _lit(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(int).sum(-1) > LIT


def _assert_upright_and_framed(scene, tab, rgb) -> None:  # noqa: ANN001
    head, ground = _head_and_ground(scene, tab.last_camera)
    lit = _lit(rgb)
    h, w = lit.shape
    rows, cols = np.flatnonzero(lit.any(1)) / h, np.flatnonzero(lit.any(0)) / w
    top, bottom, span = rows.min(), rows.max(), rows.max() - rows.min()
    head_row, ground_row = np.median(head[:, 1]), np.median(ground[:, 1])
    assert head_row < ground_row, (head_row, ground_row)  # upright: the head above the ground on screen
    assert abs(head_row - top) < 0.15 * span, (head_row, top, span)  # and the head is the top of what is drawn
    # the browser shows what that camera sees: the projected head and ground fall on drawn pixels
    for name, at in (("head", head), ("ground", ground)):
        on = lit[(at[:, 1] * h).astype(int), (at[:, 0] * w).astype(int)]
        assert len(at) > 100 and on.mean() > 0.8, (name, len(at), on.mean())
    # framed: the scene fills a good part of the view and none of it is cut off
    assert span > 0.3 and top > 0 and bottom < 1 - 1 / h and cols.min() > 0 and cols.max() < 1 - 1 / w


def test_the_playbot_sog_and_its_spz_open_upright_framed_and_alike(browser, playbot, tmp_path, artifact_dir):
    sog = load_scene(playbot)
    spz = load_scene(save_scene(sog, tmp_path / "playbot.spz"))
    shots = {}
    for name, scene in (("sog", sog), ("spz", spz)):
        viewer, page, tab = _open(browser, scene, tmp_path / name)
        try:
            assert viewer.orientation.axis == "-y"  # detected: the file is y-down
            rgb = canvas_pixels(page)
            Image.fromarray(rgb).save(artifact_dir / f"playbot_{name}.png")
            _assert_upright_and_framed(scene, tab, rgb)
            shots[name] = (rgb.astype(np.int16), tab.last_camera)
            page.close()
        finally:
            viewer.stop()
    (sog_rgb, sog_cam), (spz_rgb, spz_cam) = shots["sog"], shots["spz"]
    np.testing.assert_allclose(spz_cam.w2c, sog_cam.w2c, rtol=0, atol=1e-3)  # framed alike
    diff = np.abs(spz_rgb - sog_rgb).sum(-1)
    Image.fromarray(np.clip(diff, 0, 255).astype(np.uint8)).save(artifact_dir / "playbot_sog_vs_spz.png")
    lit = _lit(sog_rgb) | _lit(spz_rgb)
    # SPZ keeps 8-bit colour and 1/16 log-scale steps: the figure's pixels move by a few levels, not its shape
    assert (diff[lit] > 60).mean() < 0.02 and diff[lit].mean() < 15, ((diff[lit] > 60).mean(), diff[lit].mean())


def test_the_whole_playbot_exported_as_spz_opens_in_splat_transform(
    browser, playbot, splat_transform, tmp_path, artifact_dir
):
    scene = load_scene(playbot)
    viewer, page, tab = _open(browser, scene, tmp_path / "out")
    try:
        click_button(page, "Invert selection")  # nothing selected: everything
        wait_until(lambda: tab.session.state.selection.all(), what="all selected", page=page)
        select_dropdown(page, "Format", "SPZ")
        wait_until(lambda: tab.panels.export.download_btn.label == "Download SPZ", what="SPZ chosen", page=page)
        path = expect_download(page, lambda: click_button(page, "Download SPZ"), dest_dir=tmp_path)
        page.close()
    finally:
        viewer.stop()
    assert path.suffix == ".spz"
    decoded = splat_transform.convert(path, tmp_path / "peer.ply")
    assert PlyData.read(str(decoded))["vertex"].count == scene.num_gaussians == 31000
