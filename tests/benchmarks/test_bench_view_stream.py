"""``ovseg-bench view``'s moving-camera stream, smoke-run small: a raw viser client streaming camera
updates over loopback gets frames, and the moving frames' per-stage profile is reported."""

from __future__ import annotations

import json

import numpy as np

from benchmarks import cli as bench
from benchmarks.view_stream import viser_camera_message
from ovseg_core.camera import Camera


def test_camera_message_is_the_camera_viser_would_report():
    cam = Camera.look_at([2.0, -1.0, 0.5], [0, 0, 0], width=160, height=120, fov_y_deg=50)
    msg = viser_camera_message(cam, 320, 240)
    back = Camera.from_viser(msg["wxyz"], msg["position"], msg["fov"], 320 / 240, 120)
    assert np.allclose(back.w2c, cam.w2c, atol=1e-9) and np.allclose(back.K, cam.K, atol=1e-6)
    assert (msg["image_width"], msg["image_height"]) == (320, 240)


def test_bench_view_streams_frames_to_a_raw_client(tmp_path, capsys):
    out = tmp_path / "view.json"
    argv = ["view", "--repeats", "1", "--orbit-frames", "2", "--memory-prompts", "0", "--browser-repeats", "0"]
    argv += ["--large-gaussians", "0", "--width", "64", "--height", "48", "--output", str(out)]
    argv += ["--stream-seconds", "1", "--no-stream-garden", "--stream-gaussians", "3000", "--no-stream-chromium"]
    argv += ["--stream-window", "200", "150"]
    assert bench.main(argv) == 0
    stream = json.loads(out.read_text())["moving_camera_stream"]
    assert stream["gaussians"] == 3000 and stream["window"] == "200x150"
    assert stream["frames_per_s"] > 0 and stream["camera_messages_per_s"] > 0
    assert stream["moving_frame_ms"]["frames"] > 0 and stream["moving_frame_ms"]["render_ms"] > 0
    assert stream["chromium_drag"] is None and len(stream["load_avg_1min"]) == 2
    assert "raw viser client" in capsys.readouterr().out
