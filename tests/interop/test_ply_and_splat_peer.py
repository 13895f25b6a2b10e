"""ovseg's PLY and .splat against PlayCanvas splat-transform (the pinned peer), both directions, on a real capture."""

from __future__ import annotations

from scene_checks import assert_same_gaussians

from ovseg_core.io.scene_file import load_scene, save_scene


def test_peer_rewrites_a_real_inria_ply_to_the_same_gaussians(splat_transform, shared_data, tmp_path) -> None:
    source = shared_data / "kacytran_try_inria" / "point_cloud_iter7000.ply"
    rewritten = splat_transform.convert(source, tmp_path / "peer.ply")
    assert_same_gaussians(load_scene(rewritten), load_scene(source), atol=1e-5)


def test_peer_reads_what_ovseg_writes(splat_transform, shared_data, tmp_path) -> None:
    scene = load_scene(shared_data / "kacytran_try_inria" / "point_cloud_iter7000.ply")
    ours = save_scene(scene, tmp_path / "ours.ply")
    back = splat_transform.convert(ours, tmp_path / "peer.ply")
    assert_same_gaussians(load_scene(back), scene, atol=1e-5)
