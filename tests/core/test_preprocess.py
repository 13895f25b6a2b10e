"""Preprocessing: mask crops, seg maps, per-view features and their on-disk cache."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from random_capture import write_capture

from ovseg_core.data import DatasetConfig, load_dataset
from ovseg_core.errors import Cancelled
from ovseg_core.models.protocols import SCALES, MaskSet
from ovseg_core.preprocess import (
    ViewFeatures,
    build_seg_maps,
    compute_view_features,
    load_view_features,
    mask_crops,
    preprocess_views,
)


def masks_from_boxes(boxes: list[tuple[int, int, int, int]], height: int, width: int) -> MaskSet:
    """Rectangle masks from XYWH boxes (inclusive-exclusive pixel ranges)."""
    segs = np.zeros((len(boxes), height, width), bool)
    for j, (x, y, w, h) in enumerate(boxes):
        segs[j, y : y + h, x : x + w] = True
    m = len(boxes)
    return MaskSet(
        segmentations=segs,
        bboxes=np.array(boxes, np.float32).reshape(m, 4),
        areas=segs.sum(axis=(1, 2)).astype(np.int64),
        predicted_ious=np.full(m, 0.9, np.float32),
        stability_scores=np.full(m, 0.95, np.float32),
    )


class CountingRectangleMasks:
    """A mask generator returning fixed rectangles (fractions of the image), grouped by area like SAM's scales."""

    name = "test-rectangles-v1"
    _BOXES = ((0.0, 0.0, 1.0, 1.0), (0.1, 0.1, 0.5, 0.6), (0.2, 0.3, 0.2, 0.2), (0.7, 0.7, 0.08, 0.08))

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, image: np.ndarray) -> dict[str, MaskSet]:
        self.calls += 1
        h, w = image.shape[:2]
        boxes = [(int(x * w), int(y * h), max(1, int(bw * w)), max(1, int(bh * h))) for x, y, bw, bh in self._BOXES]
        frac = np.array([bw * bh for bw, bh in ((b[2], b[3]) for b in boxes)]) / (h * w)
        groups = {"default": boxes, "s": [], "m": [], "l": []}
        for box, f in zip(boxes, frac):
            groups["s" if f < 0.01 else "m" if f < 0.1 else "l"].append(box)
        return {scale: masks_from_boxes(groups[scale], h, w) for scale in SCALES}


class ColourQuadrantEncoder:
    """Mean colour of each crop quadrant, projected by a fixed random matrix, L2-normalised."""

    def __init__(self, name: str = "test-quadrant-colour-v1", embed_dim: int = 8, input_size: int = 16) -> None:
        self.name, self.embed_dim, self.input_size = name, embed_dim, input_size
        self.weight = torch.from_numpy(np.random.default_rng(0).normal(size=(13, embed_dim)).astype(np.float32))
        self.calls = 0
        self.on_call = None

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.on_call is not None:
            self.on_call()
        b, _, s, _ = images.shape
        assert s == self.input_size
        quads = images.reshape(b, 3, 2, s // 2, 2, s // 2).mean(dim=(3, 5)).reshape(b, 12)
        x = torch.cat([quads, torch.ones(b, 1)], dim=1) @ self.weight
        return torch.nn.functional.normalize(x, dim=-1)


@pytest.fixture
def capture(tmp_path) -> Path:
    write_capture(tmp_path / "scene", num_views=3)
    return tmp_path / "scene"


def test_mask_crop_is_zeroed_centred_and_padded_to_a_square():
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    masks = masks_from_boxes([(3, 2, 4, 2)], 10, 12)
    masks.segmentations[0, 2, 3] = False  # one pixel in the box but outside the mask
    crops = mask_crops(image, masks, size=4)  # a 4x4 square: resizing is the identity
    expected = np.zeros((4, 4, 3), np.uint8)
    expected[1:3] = image[2:4, 3:7]
    expected[1, 0] = 0
    assert crops.shape == (1, 3, 4, 4) and crops.dtype == torch.float32
    np.testing.assert_allclose(crops[0].permute(1, 2, 0).numpy(), expected / 255.0, atol=1e-7)

    tall = masks_from_boxes([(5, 1, 2, 6)], 10, 12)  # 6 high, 2 wide -> columns 2..3 of a 6x6 square
    crop = mask_crops(image, tall, size=6)[0].permute(1, 2, 0).numpy()
    expected = np.zeros((6, 6, 3), np.uint8)
    expected[:, 2:4] = image[1:7, 5:7]
    np.testing.assert_allclose(crop, expected / 255.0, atol=1e-7)


def test_mask_crop_resize_matches_opencv_bilinear():
    cv2 = pytest.importorskip("cv2")
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    masks = masks_from_boxes([(5, 7, 50, 31), (40, 2, 9, 40), (0, 0, 80, 60)], 60, 80)
    for size in (16, 224):
        crops = mask_crops(image, masks, size)
        for j in range(len(masks)):
            x, y, w, h = (int(v) for v in masks.bboxes[j])
            side = max(w, h)
            square = np.zeros((side, side, 3), np.uint8)
            oy, ox = (side - h) // 2, (side - w) // 2
            square[oy : oy + h, ox : ox + w] = image[y : y + h, x : x + w]
            ref = cv2.resize(square, (size, size)) / 255.0  # the reference's INTER_LINEAR
            assert np.abs(crops[j].permute(1, 2, 0).numpy() - ref).max() <= 1 / 255 + 1e-6


def test_seg_maps_smaller_masks_win_and_rows_count_across_scales():
    h, w = 8, 10
    big, small = (0, 0, 10, 8), (2, 2, 3, 3)
    for order in ([big, small], [small, big]):
        masks = {s: MaskSet.empty(h, w) for s in SCALES}
        masks["default"] = masks_from_boxes(order, h, w)
        masks["m"] = masks_from_boxes([(6, 0, 2, 2)], h, w)
        seg_maps, lengths = build_seg_maps(masks, h, w)
        small_row, big_row = order.index(small), order.index(big)
        assert seg_maps.dtype == np.int32 and seg_maps.shape == (4, h, w)
        np.testing.assert_array_equal(lengths, [2, 0, 1, 0])
        assert (seg_maps[0, 2:5, 2:5] == small_row).all()
        assert seg_maps[0, 0, 0] == big_row and seg_maps[0, 7, 9] == big_row
        assert (seg_maps[1] == -1).all() and (seg_maps[3] == -1).all()
        assert (seg_maps[2, 0:2, 6:8] == 2).all() and (seg_maps[2] >= 0).sum() == 4


def test_view_features_levels_and_validation():
    h, w = 8, 10
    image = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    vf = compute_view_features(image, CountingRectangleMasks(), ColourQuadrantEncoder(), batch_size=2)
    assert vf.features.dtype == np.float32 and vf.features.shape == (vf.num_masks, 8)
    np.testing.assert_allclose(np.linalg.norm(vf.features, axis=1), 1.0, atol=1e-5)
    assert int(vf.lengths.sum()) == vf.num_masks == 2 * 4  # every mask in default, once more in s/m/l
    for level in range(4):
        rows = vf.level_features(level)
        assert rows.shape == (vf.lengths[level], 8)
        local = vf.level_seg_map(level)
        assert local.max() < max(len(rows), 1) and local.min() >= -1
        np.testing.assert_array_equal(local >= 0, vf.level_valid_mask(level))
    # the default level's features are the same masks as s/m/l's, so they match row for row once sorted
    np.testing.assert_allclose(
        np.sort(vf.level_features(0), axis=0),
        np.sort(np.concatenate([vf.level_features(i) for i in (1, 2, 3)]), axis=0),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="seg_maps"):
        ViewFeatures(vf.features, np.full((4, h, w), vf.num_masks, np.int32), vf.lengths)
    with pytest.raises(ValueError, match="feature level"):
        vf.level_features(4)


def test_cache_is_reused_and_reports_progress(capture):
    ds = load_dataset(capture)
    gen, enc = CountingRectangleMasks(), ColourQuadrantEncoder()
    seen = []
    out = preprocess_views(ds, gen, enc, progress=lambda d, t: seen.append((d, t)))
    assert gen.calls == 3 and seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert out.cache_dir.parent == capture / ".ovseg_cache" / "preprocess"
    assert sorted(p.name for p in out.cache_dir.glob("*.npz")) == ["0000.png.npz", "0001.png.npz", "0002.png.npz"]
    assert (out.cache_dir / "settings.json").is_file()
    first = [out[i] for i in range(3)]

    again = preprocess_views(ds, gen, enc, indices=[2, 0])
    assert gen.calls == 3
    assert again.view_indices == (2, 0)
    np.testing.assert_array_equal(again[1].features, first[0].features)
    np.testing.assert_array_equal(again[0].seg_maps, first[2].seg_maps)
    full = again.load(0, with_masks=True)
    assert set(full.masks) == set(SCALES)
    expected = gen.generate(ds.load_image(2))
    for scale in SCALES:
        np.testing.assert_array_equal(full.masks[scale].segmentations, expected[scale].segmentations)
        np.testing.assert_array_equal(full.masks[scale].bboxes, expected[scale].bboxes)


def test_corrupt_cache_files_are_rebuilt_with_a_warning(capture, tmp_path):
    ds = load_dataset(capture)
    gen, enc = CountingRectangleMasks(), ColourQuadrantEncoder()
    out = preprocess_views(ds, gen, enc, cache_dir=tmp_path / "cache")
    good = out.paths[2].read_bytes()
    out.paths[0].write_bytes(b"not a zip file")
    out.paths[1].write_bytes(good[: len(good) // 2])  # truncated
    np.savez(out.paths[2], features=np.zeros((0, 8), np.float32))  # missing keys
    with pytest.warns(UserWarning, match="corrupt") as record:
        out = preprocess_views(ds, gen, enc, cache_dir=tmp_path / "cache")
    assert len(record) == 3 and gen.calls == 6
    assert all(load_view_features(p).num_masks == 8 for p in out.paths)


def test_settings_or_image_change_recomputes(capture, tmp_path):
    ds = load_dataset(capture)
    gen, enc = CountingRectangleMasks(), ColourQuadrantEncoder()
    first = preprocess_views(ds, gen, enc, cache_dir=tmp_path / "cache")
    other = preprocess_views(
        ds, gen, ColourQuadrantEncoder(name="test-quadrant-colour-v2"), cache_dir=tmp_path / "cache"
    )
    assert gen.calls == 6 and other.cache_dir != first.cache_dir
    half = preprocess_views(
        load_dataset(capture, DatasetConfig(image_downsample_factor=2)), gen, enc, cache_dir=tmp_path / "cache"
    )
    assert gen.calls == 9 and half[0].seg_maps.shape == (4, 24, 32)

    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(capture / "images" / "0001.png")
    preprocess_views(ds, gen, enc, cache_dir=tmp_path / "cache")
    assert gen.calls == 10


def test_cancel_stops_between_views_and_leaves_no_partial_files(capture, tmp_path):
    ds = load_dataset(capture)
    gen, enc = CountingRectangleMasks(), ColourQuadrantEncoder()
    cancel = threading.Event()
    with pytest.raises(Cancelled, match="after 1 of 3"):
        preprocess_views(
            ds, gen, enc, cache_dir=tmp_path / "c", cancel=cancel, progress=lambda d, t: d == 1 and cancel.set()
        )
    files = sorted(p.name for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert files == ["0000.png.npz", "settings.json"]

    # cancelled inside an image, between encoder batches: that image's file is never written
    cancel.clear()
    enc.on_call = cancel.set
    with pytest.raises(Cancelled):
        preprocess_views(ds, gen, enc, cache_dir=tmp_path / "c", cancel=cancel, batch_size=1)
    files = sorted(p.name for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert files == ["0000.png.npz", "settings.json"]


@pytest.mark.slow
def test_real_fox_photos_with_tiny_sam2_and_clip(shared_data, tmp_path):
    from ovseg_core.models import tiny_open_clip, tiny_sam2

    ds = load_dataset(shared_data / "instant_ngp_fox", DatasetConfig(image_downsample_factor=8))
    gen, enc = tiny_sam2(), tiny_open_clip()
    out = preprocess_views(ds, gen, enc, cache_dir=tmp_path, indices=[0, 1])
    assert len(out) == 2 and len(list(out.cache_dir.glob("*.npz"))) == 2
    for i in range(2):
        vf = out.load(i, with_masks=True)
        cam = ds[i].camera
        assert vf.seg_maps.shape == (4, cam.height, cam.width) and vf.seg_maps.dtype == np.int32
        assert vf.features.dtype == np.float32 and vf.features.shape == (vf.num_masks, enc.embed_dim)
        assert vf.num_masks > 0 and vf.lengths.dtype == np.int64 and int(vf.lengths.sum()) == vf.num_masks
        np.testing.assert_allclose(np.linalg.norm(vf.features, axis=1), 1.0, atol=1e-4)
        assert vf.seg_maps.max() < vf.num_masks and vf.seg_maps.min() >= -1
        for level, scale in enumerate(SCALES):
            assert vf.masks[scale].segmentations.shape == (vf.lengths[level], cam.height, cam.width)


def test_local_executor_reports_what_it_computed_and_skips_cached_views(capture, tmp_path):
    from ovseg_core.preprocess.executor import run_preprocessing

    ds = load_dataset(capture)
    gen, enc = CountingRectangleMasks(), ColourQuadrantEncoder()
    built = []
    factory = lambda: built.append(1) or (gen, enc)  # noqa: E731
    direct = preprocess_views(ds, gen, enc, cache_dir=tmp_path / "direct", indices=[1])
    first = run_preprocessing(ds, factory, cache_dir=tmp_path / "run", indices=[2, 1])
    assert first.computed_indices == (2, 1) and first.cached_indices == () and first.workers == 1
    assert first.features.cache_dir.name == direct.cache_dir.name  # one settings key for every path
    again = run_preprocessing(ds, factory, cache_dir=tmp_path / "run")
    assert again.computed_indices == (0,) and again.cached_indices == (1, 2)
    assert gen.calls == 4 and len(built) == 2
    with pytest.raises(ValueError, match="unknown executor"):
        run_preprocessing(ds, factory, executor="dask")


def test_mask_census_reads_only_valid_entries_and_names_the_missing_level(capture, tmp_path):
    from ovseg_core.preprocess.census import MaskCensus, probe_order
    from ovseg_core.preprocess.pipeline import feature_cache_for

    class NoSmallMasks(CountingRectangleMasks):
        name = "test-rectangles-no-small-v1"

        def generate(self, image: np.ndarray) -> dict[str, MaskSet]:
            return {**super().generate(image), "s": MaskSet.empty(*image.shape[:2])}

    ds = load_dataset(capture)
    gen, enc = NoSmallMasks(), ColourQuadrantEncoder()
    cache = feature_cache_for(ds, gen, enc, tmp_path / "cache")
    census = MaskCensus(ds, cache, gen.name)
    assert not census.read(0) and census.lengths == {}  # nothing cached yet
    out = preprocess_views(ds, gen, enc, cache_dir=tmp_path / "cache")
    assert all(census.read(i) for i in range(3))
    np.testing.assert_array_equal(census.lengths[1], load_view_features(out.paths[1]).lengths)
    assert census.views_with(0) == [0, 1, 2] and census.views_with(1) == []
    with pytest.raises(ValueError, match=r"no mask at level 1 \(small\) in any of the capture's 3 views"):
        census.check((1,), complete=True)
    assert census.check((0,), complete=True) == ""
    out.paths[2].write_bytes(b"not a zip file")  # unreadable: to be recomputed, never counted
    assert not census.read(2)
    assert probe_order([4, 5, 6, 7, 8]) == [4, 6, 8, 5, 7] and probe_order([1, 2]) == [1, 2]


def test_mask_census_names_sam2_masks_and_partial_coverage():
    from ovseg_core.preprocess.census import MaskCensus

    census = MaskCensus([None] * 3, None, "sam2-tiny-x")
    census.lengths = {0: np.array([5, 0, 3, 1]), 1: np.array([4, 0, 2, 2]), 2: np.array([6, 0, 4, 0])}
    assert census.check((2,), complete=True) == ""
    assert census.check((3,), complete=True) == "level 3 has masks in 2 of 3 views"
    with pytest.raises(ValueError, match=r"no SAM2 mask at level 1 \(small\) in any of the capture's 3 views") as e:
        census.check((0, 1), complete=True)
    assert "level 2 (medium): 3/3" in str(e.value)
    census.lengths = {0: np.zeros(4, np.int64)}
    with pytest.raises(ValueError, match=r"no mask at all in any of the 1 views checked so far \(of 3\)"):
        census.check((1,), complete=False)
