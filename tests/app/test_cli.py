"""ovseg-render and ovseg-bench as a user runs them."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from ovseg_app import bench, render_cli
from ovseg_app.process_memory import current_rss_mb
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


def test_bench_render_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["render", "--sizes", "3000", "--resolutions", "64x48", "--frames", "2", "--torch-frames", "1"]
    argv += ["--no-memory", "--no-garden"]
    argv += ["--feature-cases", "2000@48x32x8"]
    assert bench.main([*argv, "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = [r for r in result["render"] if r["scene"] == "synthetic-3k"]
    # one row per backend that runs here (fvdb only with CUDA), each for the one size and resolution asked
    assert {r["backend"] for r in rows} >= {"cpu", "torch"}
    assert all(r["num_gaussians"] == 3000 and r["resolution"] == "64x48" for r in rows)
    for r in result["render"]:
        assert r["frames_timed"] == (1 if r["backend"] == "torch" else 2)
        assert r["fps"] == pytest.approx(1 / r["seconds_per_frame"])
    assert result["machine"]["cpu_count"] >= 1 and "memory" not in result
    # the feature case: cpu only (the torch reference is timed on RGB), with its per-stage profile
    feature_rows = [r for r in result["render"] if r["features"] == 8]
    assert [r["backend"] for r in feature_rows] == ["cpu"]
    assert set(feature_rows[0]["stages_ms"]) >= {"project", "composite"}
    assert [r["resolution"] for r in result["cpu_vs_torch"]] == ["64x48"]
    # the printed table has one line per synthetic-3k row
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| synthetic-3k")]
    assert len(table) == len(rows)


def test_bench_view_smoke_orbits_the_demo_and_a_large_capture(tmp_path, capsys):
    out = tmp_path / "view.json"
    argv = ["view", "--repeats", "1", "--orbit-frames", "2", "--memory-prompts", "0", "--browser-repeats", "0"]
    argv += ["--large-gaussians", "3000", "--width", "64", "--height", "48", "--output", str(out)]
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["resolution"] == "64x48" and result["orbit_fps_rgb"] > 0 and result["orbit_fps_relevancy"] > 0
    large = result["large_orbit"]
    assert large["gaussians"] == 3000 and large["orbit_fps_rgb"] > 0 and large["orbit_fps_selection"] > 0
    assert "orbit on 3,000 Gaussians" in capsys.readouterr().out


def test_bench_memory_probe_reports_the_childs_own_peak():
    # Linux carries getrusage's ru_maxrss across exec: a probe started by a large parent read the
    # parent's RSS as its own peak. 1 GiB of touched ballast here must not show up in the child.
    ballast = np.ones(2**30 // 8)
    parent_rss = current_rss_mb()
    result = bench.measure_peak_rss(5000, 64, 48)
    assert 10 < result["peak_rss_mb"] < parent_rss - 512, (result, parent_rss)
    del ballast


def test_demo_scene_has_named_objects():
    scene = demo_scene()
    ids = scene.extras["object_id"]
    assert set(np.unique(ids)) == set(range(len(DEMO_OBJECTS)))


def test_bench_train_and_query_smoke(tmp_path):
    bench.main(
        [
            "train",
            "--points-per-object",
            "60",
            "--backdrop",
            "300",
            "--width",
            "32",
            "--height",
            "24",
            "--steps",
            "3",
            "--output",
            str(tmp_path / "train.json"),
        ]
    )
    train = json.loads((tmp_path / "train.json").read_text())
    assert train["steps"] == 3 and train["views"] == 24 and train["resolution"] == "32x24"
    assert train["scene_gaussians"] == 5 * 60 + 300
    # both methods start from the same seeded fields on the same views, and the speedup is their ratio
    assert train["sparse_initial_loss"] == pytest.approx(train["dense_initial_loss"], rel=1e-3)
    assert train["speedup"] == pytest.approx(train["dense_seconds_per_1k_steps"] / train["sparse_seconds_per_1k_steps"])
    assert train["final_loss_rel_diff"] == pytest.approx(
        abs(train["sparse_final_loss"] - train["dense_final_loss"]) / train["dense_final_loss"]
    )
    assert train["sparse_final_loss"] < train["sparse_initial_loss"]  # 3 steps already lower the loss
    bench.main(["query", "--num-gaussians", "5000", "--repeats", "3", "--output", str(tmp_path / "query.json")])
    query = json.loads((tmp_path / "query.json").read_text())
    assert query["num_gaussians"] == 5000 and query["min_ms"] <= query["median_ms"]
