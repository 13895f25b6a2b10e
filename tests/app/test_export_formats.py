"""The viewer's export formats: names follow the chosen format, and the bytes are that format's."""

from __future__ import annotations

import numpy as np

from ovseg_app.viewer.exports import EXPORT_FORMATS, with_format
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.io import load_scene
from ovseg_core.io.ply_table import read_ply_table
from ovseg_core.render import make_renderer
from ovseg_core.synthetic import random_scene


def test_file_names_follow_the_chosen_format():
    packed = "SuperSplat compressed PLY"
    assert with_format("mug", "PLY") == "mug.ply"
    assert with_format("mug.ply", packed) == "mug.compressed.ply"
    assert with_format("mug.compressed.ply", "PLY") == "mug.ply"
    assert with_format("mug.splat", packed) == "mug.compressed.ply"
    assert with_format("Mug.Compressed.PLY", packed) == "Mug.Compressed.PLY"
    assert with_format("mug.v2", "PLY") == "mug.v2.ply"
    assert set(EXPORT_FORMATS.values()) >= {".ply", ".compressed.ply"}


def test_a_selection_exports_as_a_compressed_ply(tmp_path):
    scene = random_scene(700, sh_degree=2, seed=9)
    session = ViewerSession(scene, make_renderer("cpu"), output_dir=tmp_path)
    keep = np.zeros(700, bool)
    keep[::3] = True
    session.set_selection(keep)
    path = session.save_output("part.compressed.ply", session.export_file("selection", ".compressed.ply"))
    assert "chunk" in read_ply_table(path).elements
    back = load_scene(path)
    assert back.num_gaussians == keep.sum() and back.sh_degree == 2
    plain = session.save_output("part.ply", session.export_file("selection", ".ply"))
    assert "chunk" not in read_ply_table(plain).elements and load_scene(plain).num_gaussians == keep.sum()
