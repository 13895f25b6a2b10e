"""ovseg-render as a user runs it."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from ovseg_app import render_cli
from ovseg_core.camera import Camera
from ovseg_core.io import save_scene
from ovseg_core.synthetic import DEMO_OBJECTS, demo_scene


def test_render_demo_png(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert render_cli.main(["--output", str(out), "--width", "96", "--height", "72"]) == 0
    img = iio.imread(out)
    assert img.shape == (72, 96, 3)
    # the demo's red mug, yellow ball, blue box and brown table are all in view
    r, g, b = (img[..., i].astype(int) for i in range(3))
    assert ((r > 150) & (g < 80) & (b < 80)).sum() > 5
    assert ((b > 150) & (r < 100)).sum() > 5
    assert ((r > 150) & (g > 150) & (b < 80)).sum() > 5
    assert "wrote" in capsys.readouterr().out


def test_render_camera_json_matches_direct_render(tmp_path):
    scene = demo_scene()
    path = tmp_path / "scene.ply"
    save_scene(scene, path)
    cam = Camera.look_at([1.2, 1.0, 1.4], [0, 0, 0.8], width=64, height=48)
    (tmp_path / "cam.json").write_text(json.dumps(cam.to_dict()))
    out = tmp_path / "view.png"
    assert (
        render_cli.main([str(path), "--camera", str(tmp_path / "cam.json"), "--output", str(out), "--backend", "cpu"])
        == 0
    )
    from ovseg_core.render import make_renderer

    direct = make_renderer("cpu").render(scene, cam).rgb[0].clamp(0, 1).numpy()
    assert np.abs(iio.imread(out).astype(float) / 255 - direct).max() <= 1 / 255 + 1e-6


def test_render_orbit_video_and_depth(tmp_path):
    out = tmp_path / "orbit.mp4"
    assert render_cli.main(["--output", str(out), "--orbit-frames", "6", "--width", "64", "--height", "48"]) == 0
    frames = iio.imread(out, plugin="pyav") if False else None  # decoded below with imageio-ffmpeg
    import imageio.v2 as imageio

    with imageio.get_reader(out) as reader:
        frames = [f for f in reader]
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
    assert not np.array_equal(frames[0], frames[3])  # the camera moved
    depth = tmp_path / "depth.png"
    assert render_cli.main(["--output", str(depth), "--mode", "depth", "--width", "64", "--height", "48"]) == 0
    assert iio.imread(depth).max() > 0


def test_render_dataset_view(tmp_path, shared_data):
    out = tmp_path / "fox.png"
    assert (
        render_cli.main(
            [
                "--dataset",
                str(shared_data / "instant_ngp_fox"),
                "--view",
                "3",
                "--downsample",
                "24",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert iio.imread(out).shape == (80, 45, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.ply"], "file not found"),
        (["--output", "x.jpg"], "must end in .png"),
        (["--dataset", "nowhere", "--view", "0"], "nowhere"),
    ],
)
def test_render_errors_are_clear(tmp_path, capsys, args, message):
    args = [a if not a.endswith((".ply", ".jpg")) else str(tmp_path / a) for a in args]
    assert render_cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("ovseg-render: error:") and message in err


def test_demo_scene_has_named_objects():
    scene = demo_scene()
    ids = scene.extras["object_id"]
    assert set(np.unique(ids)) == set(range(len(DEMO_OBJECTS)))
