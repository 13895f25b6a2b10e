"""``.ksplat`` files written by mkkellogg's GaussianSplats3D (the format's own library, pinned) decode in ovseg to
what PlayCanvas splat-transform decodes from the same bytes, and close to the source PLY within each
compression level's quantisation: a generated INRIA PLY and a real capture, levels 0, 1 and 2."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from scene_checks import assert_same_gaussians
from scipy.spatial import cKDTree

from ovseg_core.io.ksplat_file import DEFAULT_POSITION_RANGE
from ovseg_core.io.scene_file import load_scene, save_scene
from ovseg_core.synthetic import random_scene

BLOCK = 5.0
"""The library's default bucket block size: centres at levels 1-2 are u16 offsets over +-BLOCK / 2."""
HALF_TRUNCATION = 2.0**-10
"""three.js's toHalfFloat truncates the mantissa: up to one 10-bit step, relative."""


def _features(scene, position_step: float) -> np.ndarray:
    """Rows scaled so that one quantisation step of each value is about 1 (to pair decoded rows with sources)."""
    q = scene.quats.numpy().astype(np.float64)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    colour = np.clip(scene.base_colors.numpy(), 0, 1)
    return np.concatenate(
        [scene.means.numpy() / position_step, scene.log_scales.numpy() / 1e-3, colour * 255,
         scene.opacities.numpy()[:, None] * 255, q * 1e3],
        axis=1,
    )  # fmt: skip


def _assert_close_to_source(ours, source, level: int, ksplat_bytes: bytes) -> None:
    """Each decoded row matches a source row within what ``level`` keeps; no row is lost but those the
    library drops on purpose (stored alpha below 1/255)."""
    kept = np.floor(source.opacities.numpy().astype(np.float64) * 255) >= 1
    assert ours.num_gaussians == int(kept.sum())
    step = 0.5 * BLOCK / DEFAULT_POSITION_RANGE if level else 1e-6
    _, pair = cKDTree(_features(source, step)).query(_features(ours, step))
    src = {k: getattr(source, k).numpy()[pair] for k in ("means", "log_scales", "base_colors", "opacities", "quats")}
    rounding = np.spacing(np.float32(np.abs(source.means.numpy()).max()))
    pos_tol = (step / 2 + rounding) if level else 0.0
    np.testing.assert_allclose(ours.means.numpy(), src["means"], rtol=0, atol=pos_tol)
    scale_tol = (-np.log1p(-HALF_TRUNCATION) if level else 0) + 1e-6
    np.testing.assert_allclose(ours.log_scales.numpy(), src["log_scales"], rtol=0, atol=scale_tol)
    # colour and opacity: floor((value) * 255), so up to one step below
    for got, want in (
        (ours.base_colors.numpy(), np.clip(src["base_colors"], 0, 1)),
        (ours.opacities, src["opacities"]),
    ):
        diff = np.asarray(got) - want
        assert diff.max() <= 1e-6 and diff.min() >= -1 / 255 - 1e-6
    dots = np.abs((ours.quats.numpy().astype(np.float64) * src["quats"]).sum(1))
    assert 1 - dots.min() < 1e-6
    want_sh = source.shN.numpy()[pair][:, : ours.shN.shape[1]]
    if level == 0:
        np.testing.assert_allclose(ours.shN.numpy(), want_sh, rtol=0, atol=1e-7)
    elif level == 1:
        assert (np.abs(ours.shN.numpy() - want_sh) <= HALF_TRUNCATION * np.abs(want_sh) + 2.0**-24).all()
    else:  # 8 bits, floored, over the range the header declares
        lo, hi = struct.unpack_from("<ff", ksplat_bytes, 36)
        diff = ours.shN.numpy() - np.clip(want_sh, lo, hi)
        assert diff.max() <= 1e-6 and diff.min() >= -(hi - lo) / 255 - 1e-6


@pytest.fixture
def generated_ply(tmp_path):
    """An INRIA PLY of degree 3 (the library keeps 2) spread over several buckets, with some near-transparent rows."""
    scene = random_scene(2000, sh_degree=3, seed=5, extent=8.0)
    scene.logit_opacities[:40] = -8.0  # stored alpha 0: the library drops these
    return save_scene(scene, tmp_path / "generated.ply")


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("layout", ["default", "sections"])
def test_library_ksplat_of_a_generated_ply(ksplat_writer, splat_transform, generated_ply, tmp_path, level, layout):
    options = {"section_size": 300, "bucket_size": 16} if layout == "sections" else {}
    ksplat = ksplat_writer.write(generated_ply, tmp_path / "lib.ksplat", level, **options)
    ours = load_scene(ksplat)
    assert_same_gaussians(ours, load_scene(splat_transform.convert(ksplat, tmp_path / "peer.ply")))
    _assert_close_to_source(ours, load_scene(generated_ply), level, ksplat.read_bytes())
    assert ours.sh_degree == 2


@pytest.mark.parametrize("level", [0, 1, 2])
def test_library_ksplat_of_a_real_capture(ksplat_writer, splat_transform, shared_data, tmp_path, level):
    source = shared_data / "kacytran_try_inria" / "point_cloud_iter7000.ply"
    ksplat = ksplat_writer.write(source, tmp_path / "real.ksplat", level, sh_degree=1)
    ours = load_scene(ksplat)
    assert_same_gaussians(ours, load_scene(splat_transform.convert(ksplat, tmp_path / "peer.ply")))
    _assert_close_to_source(ours, load_scene(source), level, ksplat.read_bytes())
