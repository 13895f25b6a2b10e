"""GUI jobs (camera-path videos, screenshots): cancelled mid-way or stopped with the viewer, they end
promptly and leave no temporary file and no output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from ovseg_app.viewer.camera_path import write_mp4
from ovseg_app.viewer.gui_jobs import GuiJob, GuiJobs
from ovseg_core.camera_path import CameraPath, Keyframe
from ovseg_core.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
KEYS = (Keyframe((0.0, 0.0, -3.0), (1.0, 0.0, 0.0, 0.0)), Keyframe((1.0, 0.0, -3.0), (1.0, 0.0, 0.0, 0.0)))


def _flat(camera) -> np.ndarray:  # noqa: ANN001
    return np.full((camera.height, camera.width, 3), 90, np.uint8)


def _video_job(path: Path, frames: int, render, **kwargs) -> GuiJob:  # noqa: ANN001
    cameras = CameraPath(KEYS, width=32, height=24).cameras(frames)

    def work(job: GuiJob) -> Path:
        return write_mp4(path, cameras, render, 10, lambda done, total: job.progress(done / total, f"frame {done}"))

    return GuiJob("video", work, **kwargs)


def test_a_video_cancelled_mid_way_leaves_no_temp_file_and_no_output(tmp_path):
    reached = threading.Event()
    job: GuiJob | None = None

    def render(camera):  # noqa: ANN001, ANN202
        if job is not None and job.fraction >= 0.3 and not reached.is_set():
            reached.set()  # frames were written: the encoder and its temporary file exist
        return _flat(camera)

    job = _video_job(tmp_path / "camera_path.mp4", 3000, render)
    GuiJobs().start(job)
    assert reached.wait(60), job.message
    assert any(p.name.startswith(".camera_path.mp4.") for p in tmp_path.iterdir())  # the temp file, mid-way
    job.cancel()
    assert job.wait(30)
    assert job.state == "cancelled" and 0.3 <= job.fraction < 1.0
    assert list(tmp_path.iterdir()) == []


def test_a_finished_video_job_writes_every_frame(tmp_path):
    from ovseg_core.io.video import count_frames

    seen: list[str] = []
    job = _video_job(tmp_path / "v.mp4", 12, _flat, on_change=lambda j: seen.append(j.state))
    GuiJobs().start(job)
    assert job.wait(60)
    assert job.state == "done" and job.result == tmp_path / "v.mp4" and count_frames(job.result) == 12
    assert seen[-1] == "done" and [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_jobs_of_a_kind_are_limited_and_none_start_after_stop(tmp_path):
    gate = threading.Event()
    jobs = GuiJobs()
    first = jobs.start(GuiJob("video", lambda job: gate.wait(60)))
    with pytest.raises(UsageError, match="already being made"):
        jobs.start(GuiJob("video", lambda job: None))
    other = jobs.start(GuiJob("screenshot", lambda job: None))  # another kind may run alongside
    assert other.wait(30) and other.state == "done"
    gate.set()
    assert first.wait(30)
    assert jobs.stop() == []
    with pytest.raises(UsageError, match="stopping"):
        jobs.start(GuiJob("video", lambda job: None))


def test_a_failing_job_records_one_line_and_a_gone_tab_cancels_it(tmp_path):
    jobs = GuiJobs()
    bad = jobs.start(GuiJob("screenshot", lambda job: (_ for _ in ()).throw(UsageError("no camera"))))
    assert bad.wait(30) and bad.state == "failed" and bad.error == "no camera"
    alive = threading.Event()
    alive.set()
    gone = _video_job(tmp_path / "v.mp4", 3000, _flat, wanted=alive.is_set)
    jobs.start(gone)
    alive.clear()  # the tab closed
    assert gone.wait(30) and gone.state == "cancelled"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def demo_session():
    from ovseg_app.viewer.cli import ViewCommand, load_session_inputs

    scene, fields, encoder, _ = load_session_inputs(ViewCommand())
    return scene, fields, encoder


def test_stopping_the_viewer_ends_a_video_job_and_removes_its_temp_file(tmp_path, demo_session):
    from ovseg_app.viewer.server import Viewer
    from ovseg_app.viewer.session import ViewerSession
    from ovseg_core.render import make_renderer

    scene, fields, encoder = demo_session
    session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=tmp_path)
    viewer = Viewer(session, host="127.0.0.1", port=0)
    started = threading.Event()
    job = _video_job(
        session.output_path("camera_path.mp4"),
        3000,
        lambda c: session.render(c, "rgb"),
        on_change=lambda j: j.fraction > 0 and started.set(),
    )
    viewer.gui_jobs.start(job)
    assert started.wait(120), job.message
    viewer.stop()
    assert not job.running and job.state == "cancelled"
    assert not list(tmp_path.rglob("*.mp4")) and not list(tmp_path.rglob(".camera_path.mp4.*"))


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ovseg_app.viewer.camera_path import write_mp4
    from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
    from ovseg_app.viewer.gui_jobs import GuiJob
    from ovseg_app.viewer.server import Viewer
    from ovseg_app.viewer.session import ViewerSession
    from ovseg_core.render import make_renderer

    scene, fields, encoder, _ = load_session_inputs(ViewCommand())
    session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=Path(sys.argv[1]))
    viewer = Viewer(session, host="127.0.0.1", port=0)
    from ovseg_core.camera_path import CameraPath, Keyframe

    keys = (Keyframe((0.0, 0.0, -3.0), (1.0, 0.0, 0.0, 0.0)), Keyframe((1.0, 0.0, -3.0), (1.0, 0.0, 0.0, 0.0)))
    cameras = CameraPath(keys, width=32, height=24).cameras(3000)

    def progress(job, done, total):
        if done == 5:
            print("rendering", flush=True)
        job.progress(done / total, f"frame {done}")

    def work(job):
        path = session.output_path("camera_path.mp4")
        return write_mp4(path, cameras, lambda c: session.render(c, "rgb"), 30, lambda d, t: progress(job, d, t))

    viewer.gui_jobs.start(GuiJob("video", work))
    try:  # as ovseg-view's serve loop
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        viewer.stop()
        print("stopped", flush=True)
    """
)


def test_sigint_to_a_viewer_making_a_video_exits_promptly_and_leaves_no_temp_file(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'app'}{os.pathsep}{REPO}", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out"
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], stdout=subprocess.PIPE, stderr=err, env=env)
        try:
            assert proc.stdout is not None
            lines = iter(proc.stdout.readline, b"")  # viser's banner first, then ours
            assert any(line.strip() == b"rendering" for line in lines), (tmp_path / "stderr.txt").read_text()
            assert list(out.glob(".camera_path.mp4.*"))  # the video is under way
            proc.send_signal(signal.SIGINT)
            rest, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0 and b"stopped" in rest, (tmp_path / "stderr.txt").read_text()
    assert not list(out.rglob("*.mp4")) and not list(out.rglob(".camera_path.mp4.*"))
