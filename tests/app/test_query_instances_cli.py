"""``ovseg query instances``: 3D instances built from palette masks, queried and exported per instance."""

from __future__ import annotations

import numpy as np
import pytest

from ovseg_app.query_cli import main as query_main
from ovseg_core.camera import orbit_cameras
from ovseg_core.io import load_scene, save_scene
from ovseg_core.models.palette_models import Vocabulary, palette_models
from ovseg_core.pipeline import build_instances_from_dataset
from ovseg_core.synthetic import FLOATING_OBJECTS, floating_objects_scene, write_capture

PALETTE = np.array([o.color for o in FLOATING_OBJECTS])
NAMES = [o.name for o in FLOATING_OBJECTS]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    root = tmp_path_factory.mktemp("instances_cli")
    # the scene as read back from its PLY, so the CLI (which loads the file) sees the same fingerprint
    scene = load_scene(save_scene(floating_objects_scene(points_per_object=300), root / "scene.ply"))
    cams = [
        c for el in (50, 10, -35) for c in orbit_cameras((0, 0, 0.05), 2.0, 8, elevation_deg=el, width=96, height=72)
    ]
    write_capture(scene, cams, root / "capture")
    return root, scene


def test_query_cli_exports_instances(capture, tmp_path, capsys):
    root, scene = capture
    vocab = Vocabulary.build(NAMES, PALETTE, name="test-floating")
    masks, image_encoder, _ = palette_models(vocab)
    instances = build_instances_from_dataset(scene, root / "capture", masks, image_encoder)
    path = instances.save(root / "scene.instances.pt")
    args = ["instances", str(root / "scene.ply"), "--instances", str(path)]
    prompts = ["--prompt", *NAMES]
    assert query_main([*args, *prompts, "--export-instances", str(tmp_path / "named")]) == 0
    names = sorted(p.name for p in (tmp_path / "named").glob("*.ply"))
    assert sorted(n.split("_", 1)[1][:-4].replace("_", " ") for n in names) == sorted(NAMES)
    assert query_main([*args, "--export-instances", str(tmp_path / "plain")]) == 0
    assert sorted(p.name for p in (tmp_path / "plain").glob("*.ply")) == [f"{k}.ply" for k in range(len(NAMES))]
    assert query_main([*args, "--prompt", "red ball", "--export", str(tmp_path / "ball.ply")]) == 0
    ball = load_scene(tmp_path / "ball.ply")
    assert abs(ball.num_gaussians - (scene.extras["object_id"] == 0).sum()) <= 30
    capsys.readouterr()
    assert query_main(["instances", str(root / "scene.ply"), "--export-instances", str(tmp_path / "x")]) == 2
    assert "ovseg-query: error: give --instances" in capsys.readouterr().err
    other = tmp_path / "other.ply"
    save_scene(floating_objects_scene(points_per_object=50), other)
    assert (
        query_main(["instances", str(other), "--instances", str(path), "--export-instances", str(tmp_path / "y")]) == 2
    )
    assert "built on a splat with" in capsys.readouterr().err and not (tmp_path / "y").exists()
