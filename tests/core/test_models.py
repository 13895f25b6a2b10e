"""2D model adapters: tiny random-weight open_clip and SAM 2, and LangSplat's mask scales and NMS."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ovseg_core.errors import ModelLoadError
from ovseg_core.models import (
    SCALES,
    ImageEncoder,
    MaskGenerator,
    MaskSet,
    OpenClipConfig,
    OpenClipEncoder,
    Sam2Config,
    Sam2MaskGenerator,
    TextEncoder,
    group_by_scale,
    mask_nms,
    mask_nms_keep,
    scales_with_nms,
    tiny_open_clip,
    tiny_sam2,
)


def _hub_cached(repo_id: str, *filenames: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, f), str) for f in filenames)


# --- mask scales and NMS (known answers) -----------------------------------------------------------


def _maskset(segmentations, predicted_ious=None, stability=None) -> MaskSet:
    seg = np.asarray(segmentations, bool)
    m = seg.shape[0]
    bboxes = np.zeros((m, 4), np.float32)
    for i, mask in enumerate(seg):
        rows, cols = np.nonzero(mask)
        if rows.size:  # SAM's XYWH: w = last column - first column
            bboxes[i] = [cols.min(), rows.min(), cols.max() - cols.min(), rows.max() - rows.min()]
    return MaskSet(
        segmentations=seg,
        bboxes=bboxes,
        areas=seg.reshape(m, -1).sum(1).astype(np.int64),
        predicted_ious=np.asarray(predicted_ious if predicted_ious is not None else [1.0] * m, np.float32),
        stability_scores=np.asarray(stability if stability is not None else [1.0] * m, np.float32),
    )


def _strips(width: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """[len(spans), 1, width] masks covering columns [a, b)."""
    seg = np.zeros((len(spans), 1, width), bool)
    for i, (a, b) in enumerate(spans):
        seg[i, 0, a:b] = True
    return seg


def test_group_by_scale_boundaries():
    # 100 x 100 image: s < 100 px (1%), m in [100, 1000), l >= 1000 px (10%)
    areas = [50, 99, 100, 999, 1000, 5000]
    seg = np.zeros((len(areas), 100, 100), bool)
    for i, a in enumerate(areas):
        seg[i].reshape(-1)[:a] = True
    groups = group_by_scale(_maskset(seg))
    assert list(groups) == list(SCALES)
    assert groups["default"].areas.tolist() == areas
    assert groups["s"].areas.tolist() == [50, 99]
    assert groups["m"].areas.tolist() == [100, 999]
    assert groups["l"].areas.tolist() == [1000, 5000]
    # an explicit image area overrides H * W
    assert group_by_scale(_maskset(seg), image_area=1_000_000)["s"].areas.tolist() == areas
    empty = group_by_scale(MaskSet.empty(8, 6))
    assert all(len(g) == 0 and g.segmentations.shape == (0, 8, 6) for g in empty.values())


def test_mask_nms_iou_is_against_every_higher_scored_mask():
    # A=[0,100) B=[10,110) C=[20,120): IoU(A,B)=IoU(B,C)=0.818 > 0.8, IoU(A,C)=0.667.
    # LangSplat compares with all higher-scored masks (not greedy), so B removes C although B itself goes.
    seg = _strips(130, [(0, 100), (10, 110), (20, 120)])
    assert mask_nms_keep(seg, np.array([0.9, 0.8, 0.75])).tolist() == [0]
    # score order, not input order, decides who stays
    assert mask_nms_keep(seg, np.array([0.75, 0.8, 0.9])).tolist() == [2]
    assert mask_nms_keep(seg, np.array([0.9, 0.8, 0.75]), iou_thr=0.85).tolist() == [0, 1, 2]


def test_mask_nms_removes_contained_masks_of_any_score():
    big = np.zeros((20, 50), bool)
    big[:, :] = True  # 1000 px
    small = np.zeros((20, 50), bool)
    small[:5, :20] = True  # 100 px, fully inside big: 1.0 * 0.1 = 0.1 < inner_thr 0.5
    half = np.zeros((20, 50), bool)
    half[:, 25:] = True  # 500 px inside big but 50% of it: not "inside" (needs < 50% of the container)
    seg = np.stack([big, small, half])
    # the small one goes whether it scores above (here) or below the container
    assert mask_nms_keep(seg, np.array([0.8, 0.9, 0.85]), iou_thr=0.99).tolist() == [0, 2]
    assert mask_nms_keep(seg, np.array([0.9, 0.8, 0.85]), iou_thr=0.99).tolist() == [0, 2]
    # below the inner threshold the product 0.1 is no longer "too small": it stays
    assert mask_nms_keep(seg, np.array([0.8, 0.9, 0.85]), iou_thr=0.99, inner_thr=0.05).tolist() == [0, 1, 2]


def test_mask_nms_score_threshold_and_top3_fallback():
    seg = _strips(40, [(0, 5), (10, 15), (20, 25), (30, 35)])  # disjoint
    assert mask_nms_keep(seg, np.array([0.9, 0.2, 0.75, 0.7])).tolist() == [0, 2]  # 0.7 is not above 0.7
    # none above the threshold: the best three stay (returned in input order)
    assert mask_nms_keep(seg, np.array([0.1, 0.4, 0.2, 0.3])).tolist() == [1, 2, 3]
    assert mask_nms_keep(seg[:2], np.array([0.1, 0.4])).tolist() == [0, 1]
    # equal scores keep input order when ranking duplicates
    dup = _strips(10, [(0, 5), (0, 5)])
    assert mask_nms_keep(dup, np.array([0.9, 0.9])).tolist() == [0]
    assert mask_nms_keep(np.zeros((0, 4, 4), bool), np.zeros(0)).tolist() == []
    with pytest.raises(ValueError, match="scores"):
        mask_nms_keep(seg, np.ones(3))


def test_mask_nms_on_masksets_scores_by_iou_times_stability():
    seg = _strips(130, [(0, 100), (10, 110)])  # IoU 0.818
    # scores 0.9*0.8=0.72 vs 0.8*1.0=0.8: the second ranks first and removes the first
    masks = _maskset(seg, predicted_ious=[0.9, 0.8], stability=[0.8, 1.0])
    kept = mask_nms(masks)
    assert len(kept) == 1 and kept.areas.tolist() == [100] and kept.bboxes[0, 0] == 10
    assert kept.predicted_ious.dtype == np.float32 and kept.segmentations.shape == (1, 1, 130)


def test_scales_with_nms_cleans_each_scale_separately():
    # 100 x 100 image; two duplicate large masks and one small one inside them
    seg = np.zeros((3, 100, 100), bool)
    seg[0, :50] = True
    seg[1, :50] = True
    seg[2, :5, :10] = True  # 50 px: "s", inside the large ones
    out = scales_with_nms(_maskset(seg, predicted_ious=[0.9, 0.95, 0.99]))
    assert out["l"].areas.tolist() == [5000] and out["l"].predicted_ious.tolist() == pytest.approx([0.95])
    assert out["s"].areas.tolist() == [50]  # alone in its scale, so nothing contains it
    assert out["default"].areas.tolist() == [5000]  # with everything: duplicate and contained ones go
    assert len(out["m"]) == 0


# --- OpenCLIP ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip() -> OpenClipEncoder:
    return tiny_open_clip(seed=0)


def test_tiny_clip_encodes_images_and_texts(clip):
    assert isinstance(clip, ImageEncoder) and isinstance(clip, TextEncoder)
    assert (clip.embed_dim, clip.input_size) == (32, 64)
    assert clip.name == "open_clip:ovseg-tiny-clip:random-seed0"
    images = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    feats = clip.encode_images(images)
    assert feats.shape == (5, 32) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert torch.allclose(feats.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert not torch.allclose(feats[0], feats[1])
    texts = clip.encode_texts(["a red cube", "a green ball", ""])
    assert texts.shape == (3, 32) and torch.allclose(texts.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(texts[0], texts[1])
    assert clip.encode_texts([]).shape == (0, 32)
    assert clip.encode_images(torch.zeros(0, 3, 64, 64)).shape == (0, 32)


def test_tiny_clip_is_seeded_and_batch_size_independent(clip):
    images = torch.rand(7, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    texts = [f"object {i}" for i in range(5)]
    small_batches = tiny_open_clip(seed=0, batch_size=2)
    torch.testing.assert_close(small_batches.encode_images(images), clip.encode_images(images), atol=1e-5, rtol=0)
    torch.testing.assert_close(small_batches.encode_texts(texts), clip.encode_texts(texts), atol=1e-5, rtol=0)
    other = tiny_open_clip(seed=1)
    assert not torch.allclose(other.encode_images(images[:1]), clip.encode_images(images[:1]))


def test_clip_rejects_bad_input(clip):
    with pytest.raises(ValueError, match=r"\[B, 3, 64, 64\]"):
        clip.encode_images(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\[B, 3, 64, 64\]"):
        clip.encode_images(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="float"):
        clip.encode_images(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="list of strings"):
        clip.encode_texts("a cat")


def test_clip_local_checkpoint_round_trip(clip, tmp_path):
    path = tmp_path / "tiny_clip.pt"
    torch.save(clip.model.state_dict(), path)
    loaded = OpenClipEncoder.from_config(OpenClipConfig(model="ovseg-tiny-clip", pretrained=str(path), device="cpu"))
    assert loaded.name == f"open_clip:ovseg-tiny-clip:tiny_clip.pt:{path.stat().st_size}B"
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(loaded.encode_images(images), clip.encode_images(images), atol=1e-6, rtol=0)
    torch.testing.assert_close(loaded.encode_texts(["chair"]), clip.encode_texts(["chair"]), atol=1e-6, rtol=0)


def test_clip_unloadable_weights_raise_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist.*checkpoint"):
        OpenClipEncoder.from_config(OpenClipConfig(pretrained=str(tmp_path / "missing.pt"), device="cpu"))
    with pytest.raises(ModelLoadError, match="known tag.*laion2b_s34b_b88k"):
        OpenClipEncoder.from_config(OpenClipConfig(pretrained="no-such-tag", device="cpu"))
    wrong = tmp_path / "wrong.pt"
    torch.save({"not": torch.zeros(1)}, wrong)
    with pytest.raises(ModelLoadError, match="wrong.pt"):
        OpenClipEncoder.from_config(OpenClipConfig(model="ovseg-tiny-clip", pretrained=str(wrong), device="cpu"))
    with pytest.raises(ValueError, match="unknown open_clip model"):
        OpenClipEncoder.from_config(OpenClipConfig(model="ViT-Nope", device="cpu"))


def test_clip_offline_hub_download_fails_fast():
    repo = "laion/CLIP-ViT-B-16-laion2B-s34B-b88K"
    if _hub_cached(repo, "open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        pytest.skip("the reference CLIP weights are cached here; nothing to fail")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        OpenClipEncoder.from_config(OpenClipConfig(device="cpu"))
    assert time.perf_counter() - start < 20
    message = str(info.value)
    assert "ViT-B-16" in message and "laion2b_s34b_b88k" in message and "pretrained='/path/to/" in message


# --- SAM 2 ---------------------------------------------------------------------------------------------


def _rectangles(height: int = 64, width: int = 96) -> np.ndarray:
    image = np.full((height, width, 3), 40, np.uint8)
    image[5:30, 10:40] = (230, 30, 30)
    image[35:60, 50:90] = (30, 200, 60)
    image[8:16, 60:68] = (40, 60, 220)
    return image


@pytest.fixture(scope="module")
def sam() -> Sam2MaskGenerator:
    return tiny_sam2(points_per_side=4, seed=0)


@pytest.fixture(scope="module")
def sam_masks(sam) -> dict[str, MaskSet]:
    return sam.generate(_rectangles())


@pytest.mark.slow
def test_tiny_sam2_masks_are_consistent(sam, sam_masks):
    assert isinstance(sam, MaskGenerator)
    assert sam.name.startswith("sam2:sam2.1-hiera-tiny:random-seed0:pps4-")
    assert list(sam_masks) == list(SCALES)
    assert len(sam_masks["default"]) > 0
    bounds = {"default": (0.0, 1.0), "s": (0.0, 0.01), "m": (0.01, 0.1), "l": (0.1, 1.0)}
    for scale, masks in sam_masks.items():
        m = len(masks)
        assert masks.segmentations.shape == (m, 64, 96) and masks.segmentations.dtype == bool
        assert masks.bboxes.shape == (m, 4) and masks.bboxes.dtype == np.float32
        assert masks.areas.shape == (m,) and masks.areas.dtype == np.int64
        assert masks.predicted_ious.shape == (m,) and masks.predicted_ious.dtype == np.float32
        assert masks.stability_scores.shape == (m,) and masks.stability_scores.dtype == np.float32
        np.testing.assert_array_equal(masks.areas, masks.segmentations.sum(axis=(1, 2)))
        lo, hi = bounds[scale]
        fraction = masks.areas / (64 * 96)
        assert np.all((fraction >= lo) & ((fraction < hi) | (hi == 1.0))) and np.all(masks.areas > 0)
        for seg, (x, y, w, h) in zip(masks.segmentations, masks.bboxes):
            rows, cols = np.nonzero(seg)  # SAM's XYWH: w = last column - first column
            assert (x, y, w, h) == (cols.min(), rows.min(), cols.max() - cols.min(), rows.max() - rows.min())


@pytest.mark.slow
def test_sam2_fills_small_regions_without_the_cuda_extension(sam):
    from sam2.utils.transforms import SAM2Transforms

    from ovseg_core.models.sam2_masks import _postprocess_masks, small_components

    logits = torch.full((1, 1, 16, 16), -5.0)
    logits[0, 0, 2:10, 2:10] = 5.0  # 64 px object ...
    logits[0, 0, 5:7, 5:7] = -5.0  # ... with a 4 px hole
    logits[0, 0, 13, 13] = 5.0  # and a 1 px island
    island = torch.zeros_like(logits, dtype=torch.bool)
    island[0, 0, 13, 13] = True
    assert torch.equal(small_components(logits > 0, 1), island)  # the 60 px object is not small
    assert torch.equal(small_components(logits > 0, 59), island)
    assert torch.equal(small_components(logits > 0, 60), logits > 0)
    transforms = SAM2Transforms(resolution=16, mask_threshold=0.0, max_hole_area=4, max_sprinkle_area=4)
    out = _postprocess_masks(transforms, logits, (16, 16)) > 0
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[2:10, 2:10] = True
    assert torch.equal(out[0, 0], expected)
    try:
        import sam2._C  # noqa: F401
    except ImportError:  # the generator must use the fallback, or min_mask_region_area does nothing
        assert sam._generator.predictor._transforms.postprocess_masks.func is _postprocess_masks


@pytest.mark.slow
def test_sam2_rejects_bad_images(sam):
    with pytest.raises(ValueError, match="uint8"):
        sam.generate(np.zeros((64, 96, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        sam.generate(np.zeros((64, 96), np.uint8))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        sam.generate(np.zeros((64, 96, 4), np.uint8))
    with pytest.raises(ValueError, match="numpy"):
        sam.generate(torch.zeros(64, 96, 3, dtype=torch.uint8))


@pytest.mark.slow
def test_sam2_local_checkpoint_and_unloadable_weights(sam, tmp_path):
    path = tmp_path / "tiny_sam2.pt"
    torch.save({"model": sam.model.state_dict()}, path)
    loaded = Sam2MaskGenerator.from_config(Sam2Config(checkpoint="tiny", checkpoint_path=str(path), device="cpu"))
    assert loaded.name.startswith(f"sam2:sam2.1_hiera_t:tiny_sam2.pt:{path.stat().st_size}B:pps32-")
    for (key, a), (_, b) in zip(sam.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), key
    with pytest.raises(ModelLoadError, match="does not exist.*checkpoint_path"):
        Sam2MaskGenerator.from_config(Sam2Config(checkpoint_path=str(tmp_path / "none.pt"), device="cpu"))
    # a tiny checkpoint passed as "small": clear error naming the mismatch
    with pytest.raises(ModelLoadError, match="does not load into configs/sam2.1/sam2.1_hiera_s.yaml"):
        Sam2MaskGenerator.from_config(Sam2Config(checkpoint="small", checkpoint_path=str(path), device="cpu"))


def test_sam2_offline_hub_download_fails_fast():
    if _hub_cached("facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt"):
        pytest.skip("the SAM 2.1 tiny weights are cached here; nothing to fail")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        Sam2MaskGenerator.from_config(Sam2Config(checkpoint="tiny", device="cpu"))
    assert time.perf_counter() - start < 20
    message = str(info.value)
    assert "facebook/sam2.1-hiera-tiny" in message and "checkpoint_path='/path/to/sam2.1_hiera_tiny.pt'" in message


def test_importing_models_does_not_import_open_clip_or_sam2():
    code = "import sys, ovseg_core, ovseg_core.models; print('open_clip' in sys.modules, 'sam2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_tiny_clip_config_ships_with_the_package():
    from importlib.resources import files

    assert files("ovseg_core.models").joinpath("configs/ovseg-tiny-clip.json").is_file()
