"""ovseg's .spz against PlayCanvas splat-transform (the pinned peer; its writer is Niantic's packer built
to WebAssembly), both directions, on a real INRIA capture."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from scene_checks import assert_same_gaussians

from ovseg_core.io.scene_file import load_scene, save_scene
from ovseg_core.io.spz_codec import COLOR_SCALE


@pytest.fixture
def inria_ply(shared_data):
    return shared_data / "kacytran_try_inria" / "point_cloud_iter7000.ply"


@pytest.mark.parametrize("version", ["3", "4"])
def test_peer_spz_of_a_real_ply_decodes_to_what_the_peer_decodes(splat_transform, inria_ply, tmp_path, version):
    spz = tmp_path / "peer.spz"
    splat_transform.run("-w", "--spz-version", version, inria_ply, spz)
    peer_decoded = splat_transform.convert(spz, tmp_path / "peer_decoded.ply")
    ours = load_scene(spz)
    assert_same_gaussians(ours, load_scene(peer_decoded))
    # the axes are the PLY's own (no RUB flip either way): centres within half a 1/4096 step of the source
    source = load_scene(inria_ply)
    np.testing.assert_allclose(ours.means.numpy(), source.means.numpy(), rtol=0, atol=0.5 / 4096 + 1e-6)


@pytest.mark.parametrize("version", [2, 3])
def test_peer_reads_what_ovseg_writes(splat_transform, inria_ply, tmp_path, version):
    ours = save_scene(load_scene(inria_ply), tmp_path / "ours.spz", version=version)
    back = splat_transform.convert(ours, tmp_path / "peer.ply")
    assert_same_gaussians(load_scene(back), load_scene(ours))


def test_ovseg_packs_the_bytes_the_reference_packer_writes(splat_transform, inria_ply, tmp_path):
    """Same quantisation, rounding and rotation encoding as Niantic's packer (splat-transform ``--spz-version 3``)."""
    splat_transform.run("-w", "--spz-version", "3", inria_ply, tmp_path / "peer.spz")
    ours = save_scene(load_scene(inria_ply), tmp_path / "ours.spz")
    peer_bytes = gzip.decompress((tmp_path / "peer.spz").read_bytes())
    our_bytes = gzip.decompress(ours.read_bytes())
    assert len(our_bytes) == len(peer_bytes)
    differ = np.flatnonzero(np.frombuffer(our_bytes, np.uint8) != np.frombuffer(peer_bytes, np.uint8))
    assert differ.size == 0, f"{differ.size} bytes differ, first at {differ[:10]}"
    # and what a round trip costs on a real capture: colours beyond SPZ's range saturate, nothing else moves far
    source, back = load_scene(inria_ply), load_scene(ours)
    clipped = np.clip(source.sh0.numpy(), -0.5 / COLOR_SCALE, 0.5 / COLOR_SCALE)
    np.testing.assert_allclose(back.sh0.numpy(), clipped, rtol=0, atol=0.5 / (255 * COLOR_SCALE) + 1e-6)
