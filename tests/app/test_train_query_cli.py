"""ovseg-train and ovseg-query end to end on a synthetic capture with tiny real models."""

from __future__ import annotations

import csv

import pytest
from plyfile import PlyData

from ovseg_app.query_cli import main as query_main
from ovseg_app.train_cli import main as train_main
from ovseg_core.camera import orbit_cameras
from ovseg_core.io import load_scene, save_scene
from ovseg_core.synthetic import floating_objects_scene, write_capture

pytestmark = pytest.mark.slow  # the module fixture preprocesses with tiny SAM 2 and OpenCLIP (~30 s)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    scene = floating_objects_scene(points_per_object=200, backdrop=1500)
    save_scene(scene, root / "scene.ply")
    write_capture(scene, orbit_cameras((0, 0, 0.05), 2.0, 3, elevation_deg=30, width=48, height=36), root / "capture")
    rc = train_main(
        [
            "langsplatv2",
            "--sfm-dataset-path",
            str(root / "capture"),
            "--reconstruction-path",
            str(root / "scene.ply"),
            "--config.feature-level",
            "0",
            "--config.max-steps",
            "12",
            "--config.log-every",
            "4",
            "--preprocess.tiny-models",
            "--use-every-n-as-val",
            "3",
            "--log-path",
            str(root / "langsplatv2_logs"),
            "--run-name",
            "smoke",
        ]
    )
    assert rc == 0
    return root, scene


def test_train_cli_writes_the_reference_outputs(trained):
    root, _ = trained
    run = root / "langsplatv2_logs" / "smoke"
    assert (run / "checkpoints" / "12" / "langsplatv2_ckpt.pt").is_file()
    rows = list(csv.DictReader((run / "metrics_log.csv").open()))
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    assert all(float(r["train/loss"]) >= 0 for r in rows) and rows[-1]["val/cosine_loss_valid"] != ""
    assert list((run / "images").glob("*.png"))


def test_query_cli_exports_a_valid_ply_and_its_complement(trained, tmp_path):
    root, scene = trained
    # fields are found beside the scene (langsplatv2_logs/) without --fields
    args = ["fields", str(root / "scene.ply"), "--prompt", "red ball", "--threshold", "0.0"]
    assert query_main([*args, "--export", str(tmp_path / "sel.ply")]) == 0
    assert query_main([*args, "--export", str(tmp_path / "rest.ply"), "--threshold", "0.99", "--invert"]) == 0
    sel, rest = load_scene(tmp_path / "sel.ply"), load_scene(tmp_path / "rest.ply")
    assert sel.num_gaussians == scene.num_gaussians  # threshold 0 keeps everything with any relevancy
    assert 0 < rest.num_gaussians <= scene.num_gaussians
    names = [p.name for p in PlyData.read(str(tmp_path / "sel.ply"))["vertex"].properties]
    assert names[:3] == ["x", "y", "z"] and "opacity" in names and "rot_3" in names


def test_query_cli_writes_relevancy_images(trained, tmp_path):
    root, _ = trained
    rc = query_main(
        [
            "fields",
            str(root / "scene.ply"),
            "--prompt",
            "red ball",
            "--dataset",
            str(root / "capture"),
            "--relevancy-dir",
            str(tmp_path / "heat"),
        ]
    )
    assert rc == 0
    import imageio.v3 as iio

    pngs = sorted((tmp_path / "heat").glob("*.png"))
    assert len(pngs) == 3 and iio.imread(pngs[0]).shape == (36, 48, 3)


def test_cli_errors_name_the_problem(trained, tmp_path, capsys):
    root, _ = trained
    other = floating_objects_scene(points_per_object=50)
    save_scene(other, tmp_path / "other.ply")
    rc = query_main(
        [
            "fields",
            str(tmp_path / "other.ply"),
            "--prompt",
            "x",
            "--fields",
            str(root / "langsplatv2_logs"),
            "--export",
            str(tmp_path / "o.ply"),
        ]
    )
    assert rc == 2 and "trained on a splat with" in capsys.readouterr().err
    rc = query_main(["fields", str(tmp_path / "other.ply"), "--prompt", "x", "--export", str(tmp_path / "o.ply")])
    assert rc == 2 and "no language fields" in capsys.readouterr().err
    rc = train_main(
        [
            "langsplatv2",
            "--sfm-dataset-path",
            str(tmp_path / "missing"),
            "--reconstruction-path",
            str(root / "scene.ply"),
            "--log-path",
            "None",
            "--preprocess.tiny-models",
        ]
    )
    assert rc == 2 and "missing" in capsys.readouterr().err
    assert not (tmp_path / "o.ply").exists()


def test_train_cli_lift_method(trained, tmp_path):
    root, scene = trained
    rc = train_main(
        [
            "lift",
            "--sfm-dataset-path",
            str(root / "capture"),
            "--reconstruction-path",
            str(root / "scene.ply"),
            "--config.feature-level",
            "0",
            "--preprocess.tiny-models",
            "--log-path",
            str(tmp_path),
            "--run-name",
            "lifted",
        ]
    )
    assert rc == 0
    ckpt = tmp_path / "lifted" / "checkpoints" / "0" / "langsplatv2_ckpt.pt"
    from ovseg_core.fields import load_fields

    assert load_fields(ckpt, scene).method == "lift"
    assert (
        query_main(
            [
                "fields",
                str(root / "scene.ply"),
                "--fields",
                str(ckpt),
                "--prompt",
                "red ball",
                "--threshold",
                "0",
                "--export",
                str(tmp_path / "sel.ply"),
            ]
        )
        == 0
    )


def test_train_cli_instances_method_writes_the_instances_file(trained, tmp_path, capsys):
    from ovseg_core.instances import load_instances

    root, scene = trained
    out = tmp_path / "scene.instances.pt"
    args = [
        "instances",
        "--sfm-dataset-path",
        str(root / "capture"),
        "--reconstruction-path",
        str(root / "scene.ply"),
        "--preprocess.tiny-models",
        "--instances-output",
        str(out),
    ]
    assert train_main(args) == 0
    instances = load_instances(out, scene)
    assert len(instances.sizes) >= 1 and instances.labels.shape == (scene.num_gaussians,)
    assert train_main(args) == 2 and "exists" in capsys.readouterr().err  # never replaced


def test_train_cli_refuses_a_capture_that_does_not_see_the_splat_before_loading_models(tmp_path, capsys):
    scene = floating_objects_scene(points_per_object=50, backdrop=200)
    save_scene(scene, tmp_path / "scene.ply")
    # cameras orbiting a point far from the splat, looking at it: the splat is behind or outside them
    write_capture(scene, orbit_cameras((40.0, 0, 0), 2.0, 4, elevation_deg=20, width=32, height=24), tmp_path / "away")
    args = ["--sfm-dataset-path", str(tmp_path / "away"), "--reconstruction-path", str(tmp_path / "scene.ply")]
    for mode in ("langsplatv2", "lift", "instances"):
        rc = train_main([mode, *args, "--log-path", str(tmp_path / "logs"), "--preprocess.tiny-models"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("ovseg-train: error: the capture's cameras do not see the loaded splat")
        assert len(err.strip().splitlines()) == 1 and "loading" not in err  # refused before any model loads
    assert not (tmp_path / "logs").exists() and not (tmp_path / "away" / ".ovseg_cache").exists()
