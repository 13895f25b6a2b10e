"""Class-agnostic 3D instances from 2D masks (OpenMask3D-style) on a synthetic capture with known
objects: lifting, merging, classification, save/load, export and ``ovseg-query --export-instances``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from planted_models import ColourMaskGenerator, PlantedEncoder

from ovseg_core.camera import orbit_cameras
from ovseg_core.errors import FieldMismatchError
from ovseg_core.fields.view_contributions import ViewContributions
from ovseg_core.instances import (
    InstanceConfig,
    InstanceSet,
    export_instances,
    lift_view_masks,
    load_instances,
    merge_view_masks,
)
from ovseg_core.io import load_scene, save_scene
from ovseg_core.pipeline import build_instances_from_dataset
from ovseg_core.synthetic import FLOATING_OBJECTS, floating_objects_scene, write_capture

PALETTE = np.array([o.color for o in FLOATING_OBJECTS])
NAMES = [o.name for o in FLOATING_OBJECTS]


def ring_cameras(width: int = 96, height: int = 72, per_ring: int = 8):
    return [
        c
        for el in (50, 10, -35)
        for c in orbit_cameras((0, 0, 0.05), 2.0, per_ring, elevation_deg=el, width=width, height=height)
    ]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    root = tmp_path_factory.mktemp("instances")
    # the scene as read back from its PLY, so the CLI (which loads the file) sees the same fingerprint
    scene = load_scene(save_scene(floating_objects_scene(points_per_object=300), root / "scene.ply"))
    write_capture(scene, ring_cameras(), root / "capture")
    return root, scene


@pytest.fixture(scope="module")
def planted(capture):
    root, scene = capture
    encoder = PlantedEncoder(PALETTE, NAMES)
    instances = build_instances_from_dataset(scene, root / "capture", ColourMaskGenerator(PALETTE), encoder)
    return instances, encoder


def best_instance(instances: InstanceSet, gt: np.ndarray) -> tuple[int, np.ndarray]:
    """The instance holding most of ``gt`` and the fraction of ``gt`` each instance holds."""
    lab = instances.labels[gt]
    share = np.bincount(lab[lab >= 0], minlength=instances.num_instances) / gt.sum()
    return int(share.argmax()), share


def test_instances_recover_each_object_unsplit(capture, planted):
    _, scene = capture
    instances, _ = planted
    truth = scene.extras["object_id"]
    assert instances.num_instances == len(NAMES)
    for k, name in enumerate(NAMES):
        gt = truth == k
        best, share = best_instance(instances, gt)
        pred = instances.labels == best
        iou = (pred & gt).sum() / (pred | gt).sum()
        assert iou >= 0.8, f"{name}: IoU {iou:.3f}"
        assert share[best] >= 0.8 and np.delete(share, best).max(initial=0) <= 0.1, f"{name} split: {share}"
    assert (instances.support >= 3).all() and (
        instances.sizes == np.bincount(instances.labels[instances.labels >= 0])
    ).all()


def test_classification_names_each_object(capture, planted):
    _, scene = capture
    instances, encoder = planted
    labels, scores = instances.classify(encoder, NAMES)
    for k, name in enumerate(NAMES):
        best, _ = best_instance(instances, scene.extras["object_id"] == k)
        assert instances.names[best] == name and NAMES[labels[best]] == name
    rel = instances.relevancy(encoder, NAMES, ["object", "things"])  # [K, P]
    assert rel.shape == (len(NAMES), len(NAMES))
    assert (rel.max(axis=1) > 0.5).all() and (np.sort(rel, axis=1)[:, -2] < 0.5).all()


def test_membership_rule_keeps_edge_and_occluded_gaussians_out():
    # a 1x4 view; masks: pixels {0, 1} and {2, 3}
    # Gaussian 10: weight 0.6 left, 0.4 right (edge) -> left only; Gaussian 11: 0.01 everywhere (hidden) -> none
    ids = np.array([[10, 11], [10, 11], [10, 11], [10, 11]])
    w = np.array([[0.3, 0.01], [0.3, 0.01], [0.2, 0.01], [0.2, 0.01]], np.float32)
    gaussian_ids, cols = np.unique(ids, return_inverse=True)
    contrib = ViewContributions(
        1,
        4,
        np.arange(4),
        gaussian_ids,
        np.arange(0, 9, 2),
        cols.reshape(-1).astype(np.int32),
        w.reshape(-1).astype(np.float16),
    )
    segs = np.array([[[1, 1, 0, 0]], [[0, 0, 1, 1]]], bool)
    # both Gaussians show with total weight 1.0 in some other view: their floor is 5% of that
    floor = np.zeros(12, np.float32)
    floor[10:] = InstanceConfig().relative_weight * 1.0
    members, visible = lift_view_masks(contrib, segs, 12, InstanceConfig(), floor)
    assert members.toarray()[:, 10:].tolist() == [[1, 0], [0, 0]]
    assert visible.tolist() == [10]


def test_a_mask_spanning_two_objects_does_not_chain_them():
    # Gaussians 0-19 object A, 20-39 object B; views 0-3 mask each object, view 4 masks both at once
    N = 40
    rows = [np.arange(20), np.arange(20, 40)] * 4 + [np.arange(40)]
    views = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4])
    members = sp.csr_matrix([np.isin(np.arange(N), r).astype(np.float32) for r in rows])
    visible = sp.csr_matrix(np.ones((5, N), np.float32))
    merged = merge_view_masks(members, views, visible, InstanceConfig(iou_threshold=0.4, min_views=2))
    assert len(merged.groups) == 2
    assert (
        len(set(merged.labels[:20])) == 1
        and len(set(merged.labels[20:])) == 1
        and merged.labels[0] != merged.labels[20]
    )


def test_save_load_round_trip_and_scene_check(capture, planted, tmp_path):
    _, scene = capture
    instances, encoder = planted
    instances.classify(encoder, NAMES)
    path = instances.save(tmp_path / "scene.instances.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "ovseg-instances"
    back = load_instances(path, scene)
    assert (back.labels == instances.labels).all() and np.allclose(back.features, instances.features)
    assert (back.sizes == instances.sizes).all() and (back.support == instances.support).all()
    assert back.names == instances.names and back.encoder_name == encoder.name
    with pytest.raises(FieldMismatchError, match="built on a splat with"):
        load_instances(path, floating_objects_scene(points_per_object=50))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FieldMismatchError, match="not a readable"):
        load_instances(tmp_path / "junk.pt")


def test_export_writes_one_valid_ply_per_instance(capture, planted, tmp_path):
    _, scene = capture
    instances, encoder = planted
    instances.classify(encoder, NAMES)
    paths = export_instances(scene, instances, tmp_path / "parts")
    assert all(p is not None for p in paths)  # no instance is empty
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == sorted(p.name for p in paths)
    assert len(paths) == instances.num_instances
    for k, p in enumerate(paths):
        assert p.name == f"{k}_{instances.names[k].replace(' ', '_')}.ply"
        assert load_scene(p).num_gaussians == instances.sizes[k]


def test_empty_instances_are_skipped_with_a_note_and_the_export_continues(capture, planted, tmp_path, capsys):
    """An instance without Gaussians cannot be a PLY; the others are still written, the CLI says which."""
    from ovseg_app import query_cli

    root, scene = capture
    built, _ = planted
    labels = built.labels.copy()
    labels[labels == 1] = -1  # instance 1 loses its Gaussians
    hollow = InstanceSet(
        labels=labels, features=built.features, sizes=np.bincount(labels[labels >= 0], minlength=built.num_instances),
        support=built.support, scene_fingerprint=built.scene_fingerprint, encoder_name=built.encoder_name,
    )  # fmt: skip
    assert hollow.sizes[1] == 0 and hollow.num_instances > 2
    paths = export_instances(scene, hollow, tmp_path / "parts")
    assert paths[1] is None and all(p is not None for k, p in enumerate(paths) if k != 1)
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == sorted(p.name for p in paths if p)
    saved = hollow.save(tmp_path / "hollow.pt")
    out = tmp_path / "cli_parts"
    argv = ["instances", str(root / "scene.ply"), "--instances", str(saved), "--export-instances", str(out)]
    assert query_cli.main(argv) == 0
    report = capsys.readouterr().out
    width = len(str(hollow.num_instances - 1))
    assert f"{1:0{width}d}.ply: skipped, instance 1 has no Gaussians" in report
    assert f"wrote {hollow.num_instances - 1} instance PLYs to {out} (1 empty ones skipped)" in report
    assert len(list(out.iterdir())) == hollow.num_instances - 1
