"""A bundled .sog through the real command-line entry points: ``ovseg render`` and ``ovseg view``."""

from __future__ import annotations

import sys

import imageio.v3 as iio
from served_viewer import served_viewer
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
    command = [
        sys.executable,
        "-m",
        "ovseg_app.cli",
        "view",
        str(_sog(tmp_path)),
        "--output-dir",
        str(tmp_path / "out"),
    ]
    with served_viewer(command) as (_, text):
        assert "serving 400 Gaussians" in text, text
