"""Splat file formats: exact round trips, every real file, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from ovseg_core.errors import SceneFormatError
from ovseg_core.io import load_scene, save_scene
from ovseg_core.io.ply import read_ply, write_ply
from ovseg_core.io.splat_file import write_splat
from ovseg_core.scene import GaussianScene, make_scene
from ovseg_core.synthetic import random_scene

FIELDS = ("means", "quats", "log_scales", "logit_opacities", "sh0", "shN")


def assert_same(a: GaussianScene, b: GaussianScene) -> None:
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert list(a.extras) == list(b.extras)
    for key in a.extras:
        assert a.extras[key].dtype == b.extras[key].dtype, key
        assert np.array_equal(a.extras[key], b.extras[key]), key


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
@pytest.mark.parametrize("encoding", [{}, {"byte_order": ">"}, {"text": True}])
def test_inria_round_trip_is_exact(tmp_path, sh_degree, encoding):
    scene = random_scene(257, sh_degree=sh_degree, seed=sh_degree)
    scene.extras = {
        "nx": np.zeros(257, np.float32),
        "ny": np.ones(257, np.float32),
        "nz": np.zeros(257, np.float32),
        "semantic_id": np.arange(257, dtype=np.int32),
        "flag": (np.arange(257) % 2).astype(np.uint8),
    }
    path = tmp_path / "s.ply"
    path.write_bytes(write_ply(scene, **encoding))
    once = read_ply(path)
    path.write_bytes(write_ply(once, **encoding))
    twice = read_ply(path)
    assert_same(scene, once)
    assert_same(once, twice)
    assert once.sh_degree == sh_degree


def test_inria_layout_order(tmp_path):
    scene = random_scene(5, sh_degree=1)
    scene.extras = {"nx": np.zeros(5, np.float32), "ny": np.zeros(5, np.float32), "nz": np.zeros(5, np.float32)}
    ply = PlyData.read(__import__("io").BytesIO(write_ply(scene)))
    names = [p.name for p in ply["vertex"].properties]
    expected = ["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(3)] + [f"f_rest_{i}" for i in range(9)]
    expected += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert names == expected
    assert ply.header.splitlines()[1] == "format binary_little_endian 1.0"


def test_f_rest_is_channel_major(tmp_path):
    scene = random_scene(3, sh_degree=1)
    ply = PlyData.read(__import__("io").BytesIO(write_ply(scene)))
    v = ply["vertex"]
    # f_rest_0..2 are the three band-1 coefficients of the red channel
    for k in range(3):
        assert np.allclose(v[f"f_rest_{k}"], scene.shN[:, k, 0].numpy())
        assert np.allclose(v[f"f_rest_{3 + k}"], scene.shN[:, k, 1].numpy())


def test_fvdb_flavour_metadata_round_trip(tmp_path):
    scene = random_scene(40, sh_degree=2)
    scene.metadata = {
        "name": "kitchen",
        "num_steps": 30000,
        "lr": 0.0025,
        "normalization": np.arange(16, dtype=np.float32).reshape(4, 4),
    }
    path = tmp_path / "fvdb.ply"
    path.write_bytes(write_ply(scene, flavour="fvdb"))
    text = path.read_bytes()[:2000].decode("latin1")
    assert "comment fvdb_gs_ply_version fvdb_ply 1.0.0" in text
    assert "fvdb_ply_af_8198767135num_steps|int64|30000" in text
    names = [p.name for p in PlyData.read(str(path))["vertex"].properties]
    assert names[:11] == ["x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    back = load_scene(path)
    assert_same(scene, back)
    assert back.metadata["name"] == "kitchen" and back.metadata["num_steps"] == 30000
    assert back.metadata["lr"] == 0.0025
    assert np.array_equal(back.metadata["normalization"], scene.metadata["normalization"])


def test_non_rgb_channels_round_trip(tmp_path):
    """fVDB splats may carry D != 3 channels (language codes)."""
    g = np.random.default_rng(0)
    scene = make_scene(
        g.normal(size=(10, 3)),
        g.normal(size=(10, 4)),
        g.normal(size=(10, 3)),
        g.normal(size=10),
        g.normal(size=(10, 1, 8)),
    )
    path = tmp_path / "d8.ply"
    save_scene(scene, path, flavour="fvdb")
    assert load_scene(path).num_channels == 8


def test_quaternions_normalised_and_nan_rows_dropped(tmp_path):
    scene = random_scene(20, seed=1)
    scene.quats = scene.quats * 3.0
    scene.quats[0] = 0.0
    scene.means[4, 1] = float("nan")
    scene.log_scales[7, 0] = float("inf")
    arrays = {n: getattr(scene, n).numpy() for n in FIELDS}
    table = np.empty(
        20,
        dtype=[
            (n, "f4")
            for n in [
                "x",
                "y",
                "z",
                "f_dc_0",
                "f_dc_1",
                "f_dc_2",
                "opacity",
                "scale_0",
                "scale_1",
                "scale_2",
                "rot_0",
                "rot_1",
                "rot_2",
                "rot_3",
            ]
        ],
    )
    for i, a in enumerate("xyz"):
        table[a] = arrays["means"][:, i]
        table[f"scale_{i}"] = arrays["log_scales"][:, i]
        table[f"f_dc_{i}"] = arrays["sh0"][:, 0, i]
    for i in range(4):
        table[f"rot_{i}"] = arrays["quats"][:, i]
    table["opacity"] = arrays["logit_opacities"]
    path = tmp_path / "bad_rows.ply"
    PlyData([PlyElement.describe(table, "vertex")]).write(str(path))
    with pytest.warns(UserWarning, match="dropped 2 of 20 Gaussians"):
        back = load_scene(path)
    assert back.num_gaussians == 18
    torch.testing.assert_close(back.quats.norm(dim=1), torch.ones(18))
    assert torch.equal(back.quats[0], torch.tensor([1.0, 0, 0, 0]))  # the zero quaternion


def _write(path, elements, **kw):
    PlyData(elements, **kw).write(str(path))
    return path


def test_bad_files_give_clear_errors(tmp_path):
    good = tmp_path / "good.ply"
    good.write_bytes(write_ply(random_scene(50)))

    truncated = tmp_path / "truncated.ply"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(SceneFormatError, match="truncated.ply.*(truncated|malformed)"):
        load_scene(truncated)

    missing = _write(
        tmp_path / "missing.ply",
        [PlyElement.describe(np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")]), "vertex")],
    )
    with pytest.raises(SceneFormatError, match=r"missing.ply: missing required properties \['opacity'"):
        load_scene(missing)

    zero = tmp_path / "zero.ply"
    zero.write_bytes(write_ply(random_scene(1)).replace(b"element vertex 1", b"element vertex 0")[:-56])
    with pytest.raises(SceneFormatError, match="zero Gaussians"):
        load_scene(zero)

    wrong = _write(tmp_path / "mesh.ply", [PlyElement.describe(np.zeros(2, dtype=[("a", "f4")]), "face")])
    with pytest.raises(SceneFormatError, match="mesh.ply: PLY has no 'vertex' element"):
        load_scene(wrong)

    not_ply = tmp_path / "notes.ply"
    not_ply.write_text("hello")
    with pytest.raises(SceneFormatError, match="not a PLY file"):
        load_scene(not_ply)

    with pytest.raises(SceneFormatError, match="file not found"):
        load_scene(tmp_path / "nope.ply")

    odd = tmp_path / "odd.splat"
    odd.write_bytes(b"\0" * 33)
    with pytest.raises(SceneFormatError, match="not a multiple of the 32-byte"):
        load_scene(odd)

    rest = random_scene(4, sh_degree=1)
    rest.shN = rest.shN[:, :2]  # invalid on purpose: bypass the constructor check via the writer's output
    with pytest.raises(ValueError):
        GaussianScene(rest.means, rest.quats, rest.log_scales, rest.logit_opacities, rest.sh0, rest.shN)


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "scene.ply"
    save_scene(random_scene(10), path)
    before = path.read_bytes()
    bad = random_scene(10)
    bad.extras = {"complex": np.zeros(10, np.complex64)}
    with pytest.raises(ValueError):
        save_scene(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"]  # no temp files left


def test_subset_keeps_extras():
    scene = random_scene(10)
    scene.extras = {"object_id": np.arange(10, dtype=np.int32)}
    sub = scene.subset(torch.tensor([1, 3, 5]))
    assert sub.num_gaussians == 3 and sub.extras["object_id"].tolist() == [1, 3, 5]
    mask = np.zeros(10, bool)
    mask[[0, 9]] = True
    assert scene.subset(mask).extras["object_id"].tolist() == [0, 9]
    with pytest.raises(ValueError, match="selection ids"):
        scene.subset(torch.tensor([10]))


def test_splat_round_trip_within_quantisation(tmp_path):
    scene = random_scene(100, seed=4)
    path = tmp_path / "s.splat"
    path.write_bytes(write_splat(scene))
    back = load_scene(path)
    torch.testing.assert_close(back.means, scene.means)
    torch.testing.assert_close(back.scales, scene.scales, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(back.opacities, scene.opacities, atol=3e-3, rtol=0)
    colours = scene.base_colors.clamp(0, 1)
    torch.testing.assert_close(back.base_colors, colours, atol=3e-3, rtol=0)
    dots = (back.quats * scene.quats).sum(1).abs()
    assert (dots > 0.999).all()


def test_real_inria_ply_round_trip(shared_data, tmp_path):
    src = shared_data / "kacytran_try_inria" / "point_cloud_iter7000.ply"
    scene = load_scene(src)
    assert scene.num_gaussians == 9080 and scene.sh_degree == 3
    assert list(scene.extras) == ["nx", "ny", "nz"]
    assert torch.allclose(scene.quats.norm(dim=1), torch.ones(1))
    out = tmp_path / "copy.ply"
    save_scene(scene, out)
    assert_same(scene, load_scene(out))
    # the rewritten file has the source's exact property layout
    assert [p.name for p in PlyData.read(str(out))["vertex"].properties] == [
        p.name for p in PlyData.read(str(src))["vertex"].properties
    ]


def test_real_splat_file(shared_data):
    scene = load_scene(shared_data / "kacytran_try_inria" / "model_1.splat")
    assert scene.num_gaussians == 22764
    assert torch.isfinite(scene.means).all() and (scene.opacities > 0).all()
    torch.testing.assert_close(scene.quats.norm(dim=1), torch.ones(scene.num_gaussians))
