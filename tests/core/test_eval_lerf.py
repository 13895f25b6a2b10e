"""LERF-OVS evaluation: the reference's formulas (by hand and against an independent float64
re-implementation), annotation parsing, and a two-scene fixture whose mIoU and localisation
accuracy are known exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lerf_annotations import labelme, lerf_json
from PIL import Image
from scipy.ndimage import uniform_filter

from ovseg_core.camera import Camera
from ovseg_core.data import load_dataset
from ovseg_core.eval import EvalConfig, LerfScene, evaluate_lerf, evaluate_scenes
from ovseg_core.eval import lerf_ovs as lo


# -- an independent float64 version of the reference formulas ---------------------------------
def box_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over the in-image part of a k x k window (AvgPool2d, count_include_pad=False), from a
    summed-area table: window sums of 0/1 masks are exact, so majority votes at exactly 1/2 are too."""
    x = np.asarray(x, np.float64)
    H, W = x.shape
    r = k // 2
    sat = np.zeros((H + 1, W + 1))
    sat[1:, 1:] = x.cumsum(0).cumsum(1)
    y0, y1 = np.clip(np.arange(H) - r, 0, H), np.clip(np.arange(H) + r + 1, 0, H)
    x0, x1 = np.clip(np.arange(W) - r, 0, W), np.clip(np.arange(W) + r + 1, 0, W)
    total = sat[y1][:, x1] - sat[y0][:, x1] - sat[y1][:, x0] + sat[y0][:, x0]
    return total / np.outer(y1 - y0, x1 - x0)


def box_mean_loops(x: np.ndarray, k: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    H, W = x.shape
    r = k // 2
    out = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            out[i, j] = x[max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1].mean()
    return out


def reference_mask(rel: np.ndarray, thresh: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """The mask, and where float32 rounding may flip it: within 7 px of a stretched value within
    1e-5 of the threshold."""
    v = 0.5 * (box_mean(rel, 29) + rel)
    v = v - v.min()
    v = v / (v.max() + 1e-9)
    v = np.clip(v * 2 - 1, 0, 1)
    unsure = uniform_filter((np.abs(v - thresh) < 1e-5).astype(np.float64), 7, mode="constant") > 0
    return box_mean((v > thresh).astype(np.float64), 7) > 0.5, unsure


def smooth_field(seed: int, H: int = 40, W: int = 56) -> np.ndarray:
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    out = np.zeros((H, W))
    for _ in range(4):  # a few Gaussian bumps: relevancy-like maps with broad peaks
        cy, cx, s, a = g.uniform(0, H), g.uniform(0, W), g.uniform(3, 12), g.uniform(0.2, 1.0)
        out += a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return (out / out.max()).astype(np.float32)


def cols(W: int, *ranges: tuple[int, int], H: int = 1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    for a, b in ranges:
        m[:, a:b] = True
    return m


# -- formulas ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [7, 29])
def test_avg_pool_excludes_padding(k):
    x = np.random.default_rng(k).random((20, 33)).astype(np.float32)
    np.testing.assert_allclose(lo.avg_pool(x, k).numpy(), box_mean_loops(x, k), atol=1e-6)
    np.testing.assert_allclose(box_mean(x, k), box_mean_loops(x, k), atol=1e-9)  # the helper used below


def test_smooth_mask_by_hand():
    # full-height bands: the vote is over columns; windows clipped at the border count fewer pixels
    assert not lo.smooth_mask(cols(20, (0, 2), H=5)).any()  # col 0: 2 of 4 (not > 0.5), col 1: 2 of 5
    np.testing.assert_array_equal(lo.smooth_mask(cols(20, (0, 3), H=5)).numpy(), cols(20, (0, 2), H=5))  # 3/4, 3/5, 3/6
    np.testing.assert_array_equal(
        lo.smooth_mask(cols(20, (8, 12), H=5)).numpy(), cols(20, (8, 12), H=5)
    )  # 4/7 at the edges
    assert not lo.smooth_mask(cols(20, (8, 11), H=5)).any()  # 3/7 at most
    square = np.zeros((9, 9), bool)
    square[3:6, 3:6] = True
    assert not lo.smooth_mask(square).any()  # 9 of 49 at the centre


def test_threshold_applies_after_the_stretch_by_hand():
    # a 1 x 15 map: every 29-window covers the whole image, so the blend adds a constant and the
    # normalised map is j / 14; stretched * 2 - 1 > 0.4 means j / 14 > 0.7, i.e. j >= 10
    rel = np.linspace(0, 1, 15, dtype=np.float32)[None]
    np.testing.assert_array_equal(
        lo.relevancy_to_mask(rel).numpy(), cols(15, (10, 15))
    )  # smoothing keeps 10..14 (4/7 at col 10)
    assert not lo.relevancy_to_mask(np.full((6, 6), 0.7, np.float32)).any()  # flat map: normalises to 0


def test_wide_band_segments_exactly():
    rel = cols(100, (20, 50), H=10).astype(np.float32) * 0.8
    np.testing.assert_array_equal(lo.relevancy_to_mask(rel).numpy(), cols(100, (20, 50), H=10))
    assert lo.blend_relevancy(rel).max().item() == pytest.approx(0.8, rel=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_mask_matches_independent_reimplementation(seed):
    rel = smooth_field(seed)
    ours = lo.relevancy_to_mask(rel).numpy()
    ref, unsure = reference_mask(rel)
    assert unsure.mean() < 0.01
    assert (ours != ref)[~unsure].sum() == 0
    assert 0 < ours.sum() < ours.size


def test_level_choice_uses_the_blended_maximum():
    spike = np.zeros((10, 100), np.float32)
    spike[5, 60] = 1.0  # raw max 1.0, blended max ~0.5
    band = cols(100, (20, 50), H=10).astype(np.float32) * 0.6  # blended max 0.6
    seg = lo.segment({0: torch.from_numpy(spike), 1: torch.from_numpy(band)}, cols(100, (20, 50), H=10))
    assert seg.level == 1 and seg.iou == 1.0
    assert lo.choose_level({0: 0.5, 1: 0.5, 2: 0.1}) == 0  # ties: the first level, like torch.argmax


def test_localisation_by_hand():
    rel = np.zeros((60, 70), np.float32)
    rel[10:50, 20:60] = 1.0  # 40 x 40 block: the 29-window lies wholly inside it for centres 24..35 (y), 34..45 (x)
    res = lo.localise({0: torch.from_numpy(rel), 1: torch.from_numpy(0.9 * rel)}, np.array([[20, 10, 59, 49]]))
    assert res.correct and res.level == 0
    assert sorted(map(tuple, res.peaks)) == [(x, y) for x in range(34, 46) for y in range(24, 36)]  # (x, y)
    assert lo.localise(
        {0: torch.from_numpy(rel)}, np.array([[0, 0, 33, 59], [45, 35, 69, 59]])
    ).correct  # corner (45, 35) counts
    assert not lo.localise({0: torch.from_numpy(rel)}, np.array([[0, 0, 33, 59], [46, 0, 69, 59]])).correct
    assert lo.points_in_boxes(np.array([[35, 15]]), np.array([[35, 20, 30, 15]]))  # inclusive, corners in any order
    assert not lo.points_in_boxes(np.array([[35, 15]]), np.array([[36, 0, 50, 30], [0, 16, 50, 30]]))


def test_iou_and_resize():
    a, b = cols(10, (0, 4)), cols(10, (2, 6))
    assert lo.iou(a, b) == 2 / 6 and np.isnan(lo.iou(np.zeros(3, bool), np.zeros(3, bool)))
    half = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (5, 1))
    np.testing.assert_allclose(lo.resize_relevancy(half, 10, 16).numpy(), np.tile(half[0], (10, 1)), atol=1e-7)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(half)[None, None], size=(7, 9), mode="bilinear", align_corners=False
    )[0, 0]
    assert torch.equal(lo.resize_relevancy(half, 7, 9), ref)


# -- annotations ---------------------------------------------------------------------------------
def band(a: int, b: int, h: int) -> list[list[float]]:
    """Polygon covering columns a..b-1 over the full height (cv2.fillPoly includes the boundary)."""
    return [[a, 0], [b - 1, 0], [b - 1, h - 1], [a, h - 1]]


def test_frame_naming():
    assert lo.frame_index("frame_00001.jpg") == 0 and lo.frame_index("frame_00042") == 41
    with pytest.raises(ValueError, match="frame_00001"):
        lo.frame_index("frame_00000.jpg")
    with pytest.raises(ValueError, match="counted from 1"):
        lo.frame_index("image.jpg")


def test_ground_truth_polygons_union_and_boxes(tmp_path):
    labelme(
        tmp_path / "frame_00003.json",
        "frame_00003",
        6,
        8,
        [("cup", [[2, 1], [5, 1], [5, 3], [2, 3]]), ("cup", [[6.7, 4.2], [7, 4], [7, 5]]), ("bowl", band(0, 2, 6))],
    )
    f = lo.load_frame_truth(tmp_path / "frame_00003.json")
    assert f.index == 2 and f.name == "frame_00003" and list(f.labels) == ["cup", "bowl"]
    expected = np.zeros((6, 8), bool)
    expected[1:4, 2:6] = True  # vertices inclusive
    expected[4, 6:8] = expected[5, 7] = True  # (6.7, 4.2) truncates to (6, 4), like the reference's int32 cast
    np.testing.assert_array_equal(f.labels["cup"].mask, expected)
    np.testing.assert_allclose(f.labels["cup"].boxes, [[2, 1, 5, 3], [6.7, 4, 7, 5]])
    assert f.labels["bowl"].mask[:, :2].all() and f.labels["bowl"].mask.sum() == 12


def test_ground_truth_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no frame_"):
        lo.load_ground_truth(tmp_path)
    (tmp_path / "frame_00001.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"frame_00001\.json: not valid JSON"):
        lo.load_ground_truth(tmp_path)
    (tmp_path / "frame_00001.json").write_text(json.dumps({"shapes": []}))
    with pytest.raises(ValueError, match=r"frame_00001\.json: malformed annotation \(KeyError"):
        lo.load_ground_truth(tmp_path)


# -- the two-scene fixture with known answers -------------------------------------------------------
class BandProvider:
    """Per-level maps made of full-height column bands: ``spec[(frame, prompt)][level]`` is a list of
    ``(first column, end column, value)``, drawn at the camera's size. Such maps segment and
    localise predictably (see ``expected`` in ``lerf_fixture``)."""

    def __init__(self, spec: dict[tuple[int, str], dict[int, list[tuple[int, int, float]]]], levels=(0, 1)) -> None:
        self.spec, self.levels, self.calls = spec, levels, []

    def relevancy(self, frame_index: int, camera: Camera, prompt: str) -> dict[int, np.ndarray]:
        self.calls.append((frame_index, prompt, camera.width, camera.height))
        out = {}
        for lvl in self.levels:
            m = np.zeros((camera.height, camera.width), np.float32)
            for a, b, v in self.spec[(frame_index, prompt)].get(lvl, []):
                m[:, a:b] = v
            out[lvl] = m
        return out


def write_views(root: Path, n: int, w: int, h: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(n):
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(root / f"view_{i:02d}.png")
        frames.append({"file_path": f"view_{i:02d}.png", "transform_matrix": np.eye(4).tolist()})
    (root / "transforms.json").write_text(json.dumps({"fl_x": 50.0, "w": w, "h": h, "frames": frames}))
    return root


@pytest.fixture
def lerf_fixture(tmp_path):
    """Scene A (labelme JSONs + photos; 3 views, frames 1 and 3 annotated, 100 x 10):
      frame 1 "mug"   GT [20,50): L0 exact 0.8, L1 shifted +6 0.9 -> seg L1, IoU 24/36; loc L1 plateau x 40..41 in box
      frame 1 "plate" GT [60,90): L0 exact 0.55, L1 5-wide spike [70,75) 1.0 -> seg L1 (blended max 0.5 * (5/29 + 1)
                      = 0.586 > 0.55), IoU 5/30; loc L0 (pooled peak 0.55 > 5/29)
      frame 3 "mug"   GT [10,45): L0 decoy [60,95) 1.0, L1 exact 0.6 -> seg L0, IoU 0; loc L0, peak outside: miss
    Scene B (LERF-OVS JSON, no photo; 1 view rendered at 160 x 5, GT 160 x 10: maps are resized):
      "cup"  two polygons [20,50) + [100,130): L0 both bands 0.9 -> IoU 1, loc ok
      "bowl" GT [60,95): L0 shifted -10 -> [50,85) 0.5 -> IoU 25/45; loc plateau x 64..70 in box
    """
    ga, gb = tmp_path / "gt" / "a", tmp_path / "gt" / "b"
    labelme(ga / "frame_00001.json", "frame_00001", 10, 100, [("mug", band(20, 50, 10)), ("plate", band(60, 90, 10))])
    labelme(ga / "frame_00003.json", "frame_00003", 10, 100, [("mug", band(10, 45, 10))])
    for n in ("frame_00001", "frame_00003"):
        Image.fromarray(np.full((10, 100, 3), 128, np.uint8)).save(ga / f"{n}.jpg")
    lerf_json(
        gb / "frame_00001.json",
        "frame_00001",
        10,
        160,
        [("cup", band(20, 50, 10)), ("cup", band(100, 130, 10)), ("bowl", band(60, 95, 10))],
    )
    prov_a = BandProvider(
        {
            (0, "mug"): {0: [(20, 50, 0.8)], 1: [(26, 56, 0.9)]},
            (0, "plate"): {0: [(60, 90, 0.55)], 1: [(70, 75, 1.0)]},
            (2, "mug"): {0: [(60, 95, 1.0)], 1: [(10, 45, 0.6)]},
        }
    )
    prov_b = BandProvider({(0, "cup"): {0: [(20, 50, 0.9), (100, 130, 0.9)]}, (0, "bowl"): {0: [(50, 85, 0.5)]}})
    data_a = load_dataset(write_views(tmp_path / "cap_a", 3, 100, 10))
    data_b = load_dataset(write_views(tmp_path / "cap_b", 1, 160, 5))
    return [LerfScene("a", ga, prov_a, data_a), LerfScene("b", gb, prov_b, data_b)]


def test_known_answers_both_weightings(lerf_fixture, tmp_path):
    out = tmp_path / "out"
    res = evaluate_scenes(lerf_fixture, out)
    a, b = res.scenes
    assert [(p.frame, p.label, p.level, p.localization_level) for p in a.prompts] == [
        ("frame_00001", "mug", 1, 1),
        ("frame_00001", "plate", 1, 0),
        ("frame_00003", "mug", 0, 0),
    ]
    assert [p.iou for p in a.prompts] == [24 / 36, 5 / 30, 0.0]
    assert a.prompts[0].iou_per_level == {0: 1.0, 1: 24 / 36}
    assert [p.localized for p in a.prompts] == [True, True, False]
    assert [p.iou for p in b.prompts] == [1.0, 25 / 45] and all(p.localized for p in b.prompts)
    assert a.miou == pytest.approx(5 / 18, abs=1e-12) and b.miou == pytest.approx(7 / 9, abs=1e-12)
    assert res.miou_scene_weighted == pytest.approx(19 / 36, abs=1e-12)
    assert res.miou_query_weighted == pytest.approx(43 / 90, abs=1e-12)
    assert res.localization_scene_weighted == pytest.approx(5 / 6, abs=1e-12)
    assert res.localization_query_weighted == pytest.approx(4 / 5, abs=1e-12)
    # frame_00003 is view 2 of the name-sorted capture; scene b renders at its camera's 160 x 5
    assert [c[:2] for c in lerf_fixture[0].provider.calls] == [(0, "mug"), (0, "plate"), (2, "mug")]
    assert lerf_fixture[1].provider.calls[0][2:] == (160, 5)

    report = json.loads((out / "lerf_results.json").read_text())
    assert report["overall"]["mean_iou_query_weighted"] == pytest.approx(43 / 90)
    assert report["overall"]["localization_accuracy_scene_weighted"] == pytest.approx(5 / 6)
    assert [s["num_queries"] for s in report["scenes"]] == [3, 2]
    assert json.loads((out / "a" / "results.json").read_text())["prompts"][1]["iou_per_level"] == {
        "0": 1.0,
        "1": 5 / 30,
    }
    for pic in (out / "a" / "frame_00001.png", out / "a" / "frame_00003.png", out / "b" / "frame_00001.png"):
        im = np.asarray(Image.open(pic))
        assert im.ndim == 3 and im.shape[1] in (400, 320)  # enlarged 4x and 2x to at least 320 wide
    assert np.asarray(Image.open(out / "a" / "frame_00001.png")).shape[0] == 2 * (4 * 10 + 14) + 2  # a panel per prompt
    assert "overall (query-weighted)" in res.table() and "47.8%" in res.table()


def test_single_scene_entry_and_frame_range_error(lerf_fixture, tmp_path):
    a = lerf_fixture[0]
    res = evaluate_lerf(a.gt_dir, a.provider, a.dataset, None, config=EvalConfig(save_visualizations=False))
    assert res.scenes[0].name == "a" and res.miou_query_weighted == pytest.approx(5 / 18)
    short = load_dataset(write_views(tmp_path / "cap_short", 2, 100, 10))
    with pytest.raises(ValueError, match=r"frame_00003\.json: annotates view 2 .* only 2 views"):
        evaluate_lerf(a.gt_dir, a.provider, short, None)
