"""ovseg-render as a user runs it."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from random_capture import write_capture

from ovseg_app import render_cli
from ovseg_core.camera import Camera
from ovseg_core.data import DatasetConfig, load_dataset
from ovseg_core.io import load_scene, save_scene
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


def _render_view(scene_path, dataset, view, out):
    args = [str(scene_path), "--dataset", str(dataset), "--view", str(view), "--output", str(out), "--backend", "cpu"]
    assert render_cli.main(args) == 0
    return iio.imread(out).astype(float) / 255


def _direct(scene, camera):
    from ovseg_core.render import make_renderer

    return make_renderer("cpu").render(scene, camera).rgb[0].clamp(0, 1).numpy()


def test_render_dataset_view_is_the_view_train_and_query_number(tmp_path):
    """transforms.json lists its frames in reverse name order; --view N is the N-th by name, as in
    train and query (``load_dataset``), not the N-th in the file."""
    scene = demo_scene()
    save_scene(scene, tmp_path / "scene.ply")
    by_name = write_capture(tmp_path / "capture", num_views=5)
    cameras = load_dataset(tmp_path / "capture").cameras
    for view in (1, 4):
        np.testing.assert_allclose(cameras[view].w2c, by_name[view].w2c, atol=1e-9)
        ours = _render_view(tmp_path / "scene.ply", tmp_path / "capture", view, tmp_path / f"v{view}.png")
        assert np.abs(ours - _direct(scene, cameras[view])).max() <= 1 / 255 + 1e-6
        in_file_order = _direct(scene, by_name[4 - view])
        assert np.abs(ours - in_file_order).max() > 0.2


def test_render_dataset_view_applies_the_scene_normalisation(tmp_path):
    """An fVDB splat carries the similarity its Gaussians were trained in; the dataset's cameras are moved
    by it, as train and query move them."""
    import torch

    scene = demo_scene()
    t = np.eye(4)
    t[:3, :3] = 0.5 * np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    t[:3, 3] = [0.2, -0.1, 0.3]
    scene.metadata["normalization_transform"] = torch.from_numpy(t.astype(np.float32))
    save_scene(scene, tmp_path / "scene.ply", flavour="fvdb")
    loaded = load_scene(tmp_path / "scene.ply")
    write_capture(tmp_path / "capture", num_views=3)
    raw = load_dataset(tmp_path / "capture", DatasetConfig(normalization="none")).cameras[2]
    aligned = load_dataset(tmp_path / "capture", reconstruction_metadata=loaded.metadata).cameras[2]
    ours = _render_view(tmp_path / "scene.ply", tmp_path / "capture", 2, tmp_path / "v.png")
    assert np.abs(ours - _direct(loaded, aligned)).max() <= 1 / 255 + 1e-6
    assert np.abs(ours - _direct(loaded, raw)).max() > 0.2


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
