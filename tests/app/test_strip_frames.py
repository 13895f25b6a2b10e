"""Screenshots render in strips (``view_frames.render_in_strips``) so a 4096x4096 one costs a strip's
memory; the strips must give the frame one render gives, in every view mode."""

from __future__ import annotations

import numpy as np
import pytest

from ovseg_app.viewer import view_frames
from ovseg_app.viewer.session import VIEW_MODES, ViewerSession
from ovseg_core.camera import orbit_cameras
from ovseg_core.render import make_renderer


@pytest.fixture
def session(planted_run, tmp_path):
    scene, _, result, encoder, _, _ = planted_run
    return ViewerSession(scene, make_renderer("cpu"), fields=result.fields, text_encoder=encoder, output_dir=tmp_path)


def camera(width: int = 160, height: int = 120):
    return orbit_cameras((0, 0, 0.05), 2.0, 1, elevation_deg=30, width=width, height=height)[0]


@pytest.mark.parametrize("prompt", ["red ball", "zebra"])
def test_strips_give_the_frame_one_render_gives_in_every_mode(session, prompt):
    cam = camera()
    session.set_prompt(positives=[prompt])
    centre = session.base_scene.means.norm(dim=1).numpy() < 0.3
    session.set_selection(centre)  # the selection's outline crosses strip edges
    for mode in VIEW_MODES:
        whole = view_frames.render(session, session.state, cam, mode)
        strips = view_frames.render_in_strips(session, session.state, cam, mode, strip_pixels=cam.width * 16)
        assert strips.dtype == np.uint8
        np.testing.assert_array_equal(strips, whole, err_msg=f"{mode}, {prompt!r}")  # the same rays, pixel for pixel


def test_a_frame_that_fits_one_strip_is_one_render_and_check_runs_between_strips(session):
    cam = camera()
    calls = []
    one = view_frames.render_in_strips(session, session.state, cam, "rgb", check=lambda: calls.append(1))
    assert calls == [] and np.array_equal(one, view_frames.render(session, session.state, cam, "rgb"))
    view_frames.render_in_strips(
        session, session.state, cam, "rgb", check=lambda: calls.append(1), strip_pixels=160 * 40
    )
    assert len(calls) == 3  # 120 rows in strips of 40


def test_a_cancelled_screenshot_stops_at_the_next_strip(session):
    class Cancelled(Exception):
        pass

    strips = []

    def check() -> None:
        strips.append(1)
        if len(strips) == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        session.relevancy_png(camera(160, 4096 * 8), "rgb", check)
    assert len(strips) == 2
