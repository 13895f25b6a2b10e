"""The new scene formats through the real entry points: ``ovseg render`` and ``ovseg view`` open a
.spz and a training checkpoint, ``ovseg query --export`` refuses an unwritable extension before any
work, and the viewer's Export panel writes every format the registry can write."""

from __future__ import annotations

import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from served_viewer import served_viewer

from ovseg_app import cli
from ovseg_app.viewer.exports import EXPORT_FORMATS, with_format
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.io import load_scene, save_scene
from ovseg_core.render import make_renderer
from ovseg_core.synthetic import random_scene


@pytest.fixture
def scene():
    return random_scene(300, sh_degree=1, seed=5)


def test_ovseg_render_draws_an_spz_and_a_gsplat_checkpoint_like_their_scenes(tmp_path, scene):
    spz = save_scene(scene, tmp_path / "scene.spz")
    ckpt = tmp_path / "ckpt_6999_rank0.pt"
    splats = {
        "means": scene.means,
        "scales": scene.log_scales,
        "quats": scene.quats,
        "opacities": scene.logit_opacities,
    }
    torch.save({"step": 6999, "splats": {**splats, "sh0": scene.sh0, "shN": scene.shN}}, ckpt)
    images = {}
    for source in (spz, ckpt, save_scene(load_scene(spz), tmp_path / "decoded.ply")):
        out = tmp_path / f"{source.stem}.png"
        args = ["render", str(source), "--output", str(out), "--width", "64", "--height", "48", "--backend", "cpu"]
        assert cli.main(args) == 0
        images[source.suffix] = iio.imread(out).astype(int)
    assert images[".spz"].shape[:2] == (48, 64) and images[".spz"].std() > 5  # something was drawn
    np.testing.assert_array_equal(images[".spz"], images[".ply"])  # the .spz is the scene it decodes to
    assert np.abs(images[".pt"] - images[".spz"]).mean() < 3  # the checkpoint is the unquantised scene


def test_ovseg_query_refuses_an_export_format_it_cannot_write_before_loading_anything(tmp_path, capsys, scene):
    path = save_scene(scene, tmp_path / "scene.spz")
    code = cli.main(["query", "fields", str(path), "--prompt", "mug", "--export", str(tmp_path / "mug.txt")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("mug.txt: ovseg writes scenes as .ply, .compressed.ply, .spz, .splat (by extension)"), err


@pytest.mark.slow
def test_ovseg_view_serves_an_spz(tmp_path, scene):
    path = save_scene(scene, tmp_path / "scene.spz")
    command = [sys.executable, "-m", "ovseg_app.cli", "view", str(path), "--output-dir", str(tmp_path / "o")]
    with served_viewer(command, timeout=240) as (_, text):
        assert f"serving {scene.num_gaussians:,} Gaussians" in text, text


def test_viewer_exports_the_selection_in_every_writable_format(tmp_path, scene):
    assert list(EXPORT_FORMATS) == ["PLY", "SuperSplat compressed PLY", "SPZ", ".splat"]
    session = ViewerSession(scene, make_renderer("cpu"), output_dir=tmp_path / "out")
    mask = np.zeros(scene.num_gaussians, bool)
    mask[::3] = True
    session.set_selection(mask)
    for name, suffix in EXPORT_FORMATS.items():
        data = session.export_file("selection", suffix)
        path = session.save_output(f"selection{suffix}", data)
        back = load_scene(path)
        assert back.num_gaussians == mask.sum(), name
        # compressed PLY stores Gaussians in Morton order: each centre must be one of the selection's
        gap, index = cKDTree(scene.means.numpy()[mask]).query(back.means.numpy())
        assert gap.max() < 2e-3 and len(set(index.tolist())) == mask.sum(), name
    with pytest.raises(ValueError, match="cannot export as '.obj'"):
        session.export_file("selection", ".obj")
    assert session.export_ply("selection") == session.export_file("selection", ".ply")
    assert with_format("mug.ply", "SPZ") == "mug.spz" and with_format("mug", "SPZ") == "mug.spz"
    assert with_format("mug.SPZ", "PLY") == "mug.ply" and with_format("a.b", ".splat") == "a.b.splat"
