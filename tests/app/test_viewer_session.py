"""The viewer's session without a browser: GUI state in, frames, selections and exports out."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from planted_models import ColourMaskGenerator
from plyfile import PlyData

from ovseg_app.viewer.session import ViewerSession
from ovseg_app.viewer.training_job import TrainingJob, TrainingRequest
from ovseg_core.camera import Camera, orbit_cameras
from ovseg_core.render import make_renderer
from ovseg_core.synthetic import FLOATING_OBJECTS
from ovseg_core.synthetic_capture import write_capture

PALETTE = np.array([o.color for o in FLOATING_OBJECTS])
NAMES = [o.name for o in FLOATING_OBJECTS]


@pytest.fixture(scope="module")
def trained(planted_run):
    """(scene, capture directory, fields, encoder) of the shared planted run (tests/conftest.py)."""
    scene, capture, result, encoder, _, _ = planted_run
    return scene, capture, result.fields, encoder


@pytest.fixture
def session(trained, tmp_path):
    scene, _, fields, encoder = trained
    return ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=tmp_path / "out")


def view_camera() -> Camera:
    return orbit_cameras((0, 0, 0.05), 2.0, 1, elevation_deg=30, width=160, height=120)[0]


def object_pixels(scene, camera: Camera, k: int) -> np.ndarray:
    onehot = F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), len(NAMES)).float()
    w = make_renderer("cpu").render(scene, camera, features=onehot).features[0].numpy()
    return w[..., k] > 0.5


def test_prompt_changes_the_frame_where_the_object_is(session, trained):
    scene = trained[0]
    cam = view_camera()
    rgb = session.render(cam, "rgb").astype(int)
    session.set_prompt(positives=["red ball"])
    heat = session.render(cam, "relevancy").astype(int)
    changed = np.abs(heat - rgb).sum(-1) > 30
    ball = object_pixels(scene, cam, 0)
    assert ball.sum() > 50
    assert changed[ball].mean() > 0.9 and changed[~ball].mean() < 0.02
    mask = session.render(cam, "mask")
    assert mask[ball].mean() > 2 * mask[~ball & (rgb.sum(-1) > 60)].mean()
    for mode in ("pca", "depth", "selection"):
        assert session.render(cam, mode).shape == (120, 160, 3)


def test_click_selects_the_instance_and_labels_it(session, trained):
    scene = trained[0]
    cam = view_camera()
    truth = scene.extras["object_id"]
    session.set_prompt(positives=["red ball", "blue cube"])
    hits = []
    for k in (0, 1):
        ys, xs = np.nonzero(object_pixels(scene, cam, k))
        hits.append((float(np.median(xs)) + 0.5, float(np.median(ys)) + 0.5))
    res = session.click(cam, hits[0], "medium", "replace")
    assert res.label == "red ball"
    iou = (session.selection & (truth == 0)).sum() / (session.selection | (truth == 0)).sum()
    assert iou >= 0.9
    res = session.click(cam, hits[1], "medium", "add")
    assert res.label == "blue cube" and res.selected_count == session.selection.sum()
    assert set(np.unique(truth[session.selection])) == {0, 1}
    session.click(cam, hits[0], "medium", "remove")
    assert set(np.unique(truth[session.selection])) == {1}
    session.clear_selection()
    assert not session.selection.any()
    assert session.click(cam, (1.0, 1.0), "medium").ids.size == 0  # empty background


def test_export_selection_prompt_and_complement(session, trained):
    scene = trained[0]
    truth = scene.extras["object_id"]
    session.set_prompt(positives=["green can"], threshold=0.5)
    data = session.export_ply("prompt")
    ply = PlyData.read(io.BytesIO(data))
    assert ply["vertex"].count == session.prompt_selection().sum()
    assert "f_dc_0" in ply["vertex"].data.dtype.names
    selected = session.prompt_selection()
    assert (selected & (truth == 3)).sum() / (selected | (truth == 3)).sum() >= 0.9
    rest = PlyData.read(io.BytesIO(session.export_ply("prompt-complement")))
    assert rest["vertex"].count == scene.num_gaussians - selected.sum()
    with pytest.raises(ValueError, match="selection is empty"):
        session.export_ply("selection")
    path = session.save_output("../../etc/evil name.ply", data)
    assert path.parent == session.output_dir and path.name == "evil_name.ply" and path.read_bytes() == data


def test_bad_state_is_refused(session):
    with pytest.raises(ValueError, match="threshold"):
        session.set_prompt(threshold=2.0)
    with pytest.raises(ValueError, match="level 3 is not in the loaded fields"):
        session.set_prompt(level=3)
    with pytest.raises(ValueError, match="unknown view mode"):
        session.render(view_camera(), "x-ray")


@pytest.mark.slow
def test_training_job_runs_in_the_background_and_swaps_fields(trained, tmp_path):
    scene, root, _, _ = trained
    lock = threading.RLock()
    session = ViewerSession(scene, make_renderer("cpu"), device_lock=lock)
    from ovseg_core.fields.discovery import text_encoder_for

    job = TrainingJob(scene, session.renderer, lock, on_finished=lambda f: session.set_fields(f, text_encoder_for(f)))
    small = tmp_path / "capture"
    write_capture(scene, orbit_cameras((0, 0, 0.05), 2.0, 2, elevation_deg=30, width=48, height=36), small)
    job.start(TrainingRequest(small, levels=(0,), steps=8, model_size="tiny-random"))
    frames = 0
    while not job.wait(0.05):  # the viewer keeps rendering meanwhile
        session.render(view_camera(), "rgb")
        frames += 1
    assert job.state == "done", job.message
    assert job.fraction == 1.0 and job.losses and session.fields is not None and session.levels == [0]
    assert frames >= 1
    job.start(TrainingRequest(small, levels=(0,), steps=100_000, model_size="tiny-random"))
    with pytest.raises(RuntimeError, match="already in progress"):
        job.start(TrainingRequest(small, levels=(0,), steps=1, model_size="tiny-random"))
    job.cancel()
    job.wait(60)
    assert job.state == "cancelled"
    (tmp_path / "empty").mkdir()
    job.start(TrainingRequest(tmp_path / "empty", levels=(0,), steps=1, model_size="tiny-random"))
    job.wait(60)
    assert job.state == "failed" and "empty" in job.error


def test_colormaps_and_browser_side_colours(session, trained):
    scene = trained[0]
    cam = view_camera()
    session.set_prompt(positives=["purple egg"])
    turbo_frame = session.render(cam, "relevancy")
    session.set_prompt(colormap="hot")
    assert not np.array_equal(session.render(cam, "relevancy"), turbo_frame)
    with pytest.raises(ValueError, match="unknown colormap"):
        session.set_prompt(colormap="rainbow")
    # browser-side display: per-Gaussian colours mark the prompt's object
    colors = session.gaussian_colors("relevancy")
    base = session.gaussian_colors("rgb")
    changed = np.abs(colors - base).sum(1) > 0.05
    egg = scene.extras["object_id"] == 4
    assert changed[egg].mean() > 0.9 and changed[~egg].mean() < 0.05


def test_ovseg_view_serves_the_demo_and_warns_on_open_hosts(tmp_path):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ovseg_app.viewer.cli",
            "--port",
            str(port),
            "--host",
            "0.0.0.0",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "ovseg-view: serving" in line:
                break
        text = "".join(lines)
        assert "vocabulary:ovseg-demo-tabletop-v1" in text and "anyone who can reach this machine" in text, text
        html = urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=10).read()
        assert b"<html" in html.lower() or b"<!doctype" in html.lower()
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run(
        [sys.executable, "-m", "ovseg_app.viewer.cli", str(tmp_path / "missing.ply")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "missing.ply" in bad.stderr


def test_instances_drive_clicks_the_list_and_per_instance_export(session, trained):
    from ovseg_core.instances import build_instances_from_dataset

    scene, root, _, encoder = trained
    instances = build_instances_from_dataset(scene, root, ColourMaskGenerator(PALETTE), encoder)
    session.set_instances(instances, encoder)
    session.set_prompt(positives=["blue cube", "red ball"])
    rows = session.instance_rows()
    assert len(rows) == 5 and {best for *_, best in rows} >= {"blue cube", "red ball"}
    truth = scene.extras["object_id"]
    cam = view_camera()
    ys, xs = np.nonzero(object_pixels(scene, cam, 1))
    res = session.click(cam, (float(np.median(xs)) + 0.5, float(np.median(ys)) + 0.5), "small")
    assert res.label == "blue cube" and (truth[session.selection] == 1).all()
    cube = next(k for k, _, _, best in rows if best == "blue cube")
    assert np.array_equal(np.flatnonzero(session.selection), np.flatnonzero(instances.labels == cube))
    ply = PlyData.read(io.BytesIO(session.export_instance_ply(cube)))
    assert ply["vertex"].count == (instances.labels == cube).sum()
    with pytest.raises(ValueError, match="no instance 99"):
        session.select_instance(99)
