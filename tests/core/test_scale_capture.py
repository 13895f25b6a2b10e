"""The LERF-sized synthetic capture of ``ovseg-bench scale``: exact size, faint statistics, and
point z-buffer masks that agree with the rendered regions."""

from __future__ import annotations

import numpy as np

from ovseg_core.render import make_renderer
from ovseg_core.synthetic.faint_capture import region_labels
from ovseg_core.synthetic.scale_capture import PointMasks, scale_capture, scale_views


def test_scale_capture_has_the_requested_size_and_faint_statistics():
    cap = scale_capture(40_000, 5, 96, 72, num_objects=6, embed_dim=32)
    assert cap.scene.num_gaussians == 40_000 and len(cap.cameras) == 5
    assert (cap.cameras[0].width, cap.cameras[0].height) == (96, 72)
    assert 0.04 < float(np.median(cap.scene.opacities.numpy())) < 0.09
    part = np.asarray(cap.scene.extras["part"])
    assert 0.45 < (np.isin(part, (1, 2))).mean() < 0.55 and (part == 4).sum() == 400
    assert cap.vocabulary.features.shape == (6 + 2, 32)


def test_point_masks_agree_with_the_rendered_regions():
    cap = scale_capture(30_000, 4, 96, 72, num_objects=6, embed_dim=16)
    renderer = make_renderer("cpu")
    masks = PointMasks.of(cap, downsample=1)
    agree = []
    for cam in cap.cameras:
        points, rendered = masks.labels(cam), region_labels(cap, renderer, cam)
        both = (points >= 0) & (rendered >= 0)
        assert both.mean() > 0.3
        agree.append((points[both] == rendered[both]).mean())
    assert np.mean(agree) > 0.85, agree


def test_scale_views_share_one_mask_map_across_levels():
    cap = scale_capture(5_000, 3, 64, 48, num_objects=3, embed_dim=16)
    views = scale_views(cap, downsample=4)
    assert [v.name for v in views] == ["view_000", "view_001", "view_002"]
    assert [v.name for v in scale_views(cap, cap.cameras[1:], first_index=1)] == ["view_001", "view_002"]
    for v in views:
        assert v.seg_maps.shape == (4, 48, 64) and v.seg_maps.stride(0) == 0  # one map, not four copies
        assert int(v.seg_maps.max()) < v.features.shape[0] and float((v.seg_maps[0] >= 0).float().mean()) > 0.3
