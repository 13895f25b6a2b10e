"""A bundled .sog through the real command-line entry points: ``ovseg render`` and ``ovseg view``."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import imageio.v3 as iio
from sog_builder import encode_scene, save_sog

from ovseg_app.cli import main
from ovseg_core.synthetic import random_scene


def _sog(tmp_path):
    meta, files = encode_scene(random_scene(400, sh_degree=1, seed=7))
    return save_sog(tmp_path / "scene.sog", meta, files)


def test_ovseg_render_renders_a_sog(tmp_path):
    out = tmp_path / "sog.png"
    assert main(["render", str(_sog(tmp_path)), "--output", str(out), "--width", "64", "--height", "48"]) == 0
    image = iio.imread(out)
    assert image.shape[:2] == (48, 64) and image[..., :3].max() > 0


def test_ovseg_view_serves_a_sog(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "ovseg_app.cli", "view", str(_sog(tmp_path)), "--port", str(port)]
    proc = subprocess.Popen(
        cmd + ["--output-dir", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    watchdog = threading.Timer(120, proc.kill)  # a server that hangs without a word fails too
    watchdog.start()
    try:
        lines = []
        for line in proc.stdout:  # ends when the process exits (a crash fails at once)
            lines.append(line)
            if "ovseg-view: serving" in line:
                break
        text = "".join(lines)
        assert proc.poll() is None, f"ovseg view exited with {proc.returncode}:\n{text}"
        assert "serving 400 Gaussians" in text, text
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(10)
