"""LERF-OVS ground truth and the scoring formulas of LangSplat(V2)'s ``eval_lerf.py``.

Pure functions, each matching one step of the reference evaluation
(``evaluation/lerf_ovs/eval_lerf.py`` in openvdb/fvdb-examples' LangSplatV2, itself a port of
LangSplatV2's ``eval_lerf.py``):

- ground truth: one JSON per annotated frame ``frame_XXXXX.json``; every object is a polygon,
  rasterised like ``cv2.fillPoly`` on int32-truncated vertices; objects sharing a label are OR-ed
  into one mask and keep one box each. ``frame_00001`` is view 0 of the name-sorted images.
- segmentation (``relevancy_to_mask``): blend = 0.5 * (AvgPool29(rel) + rel); min-max normalise
  (``/ (max + 1e-9)``), map to [-1, 1], clip to [0, 1]; ``> threshold`` (0.4); then
  ``smooth_mask``: AvgPool7(mask) > 0.5. All pools are stride 1, "same" padding, and average over
  the in-image pixels only (``count_include_pad=False``).
- level choice for segmentation: the level whose *blended* map has the highest maximum.
- localisation: AvgPool29 of each level's raw map; the level with the highest peak; correct when
  any pixel attaining that peak lies inside (inclusive) any of the label's boxes.

Relevancy maps are resized bilinearly (``align_corners=False``) to the annotation size first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.errors import MissingFileError, SceneFormatError

BLEND_KERNEL = 29
"""AvgPool window blended 50/50 with the raw relevancy before thresholding."""
SMOOTH_KERNEL = 7
"""AvgPool window of the majority vote that cleans the thresholded mask."""
LOCALISATION_KERNEL = 29
"""AvgPool window whose peak is the localisation guess."""
MASK_THRESHOLD = 0.4
"""Threshold on the normalised, [-1, 1]-stretched and clipped map (the reference's ``--mask_thresh``)."""
_NORM_EPS = 1e-9  # the reference divides by (max + 1e-9)


# -- ground truth ------------------------------------------------------------------------------
@dataclasses.dataclass
class LabelTruth:
    """All objects of one label in one frame."""

    mask: np.ndarray
    """``[H, W]`` bool, the union of the label's polygons."""
    boxes: np.ndarray
    """``[B, 4]`` float64 ``x1, y1, x2, y2`` in pixels, one per object."""


@dataclasses.dataclass
class FrameTruth:
    """One annotated frame."""

    name: str
    """Frame name without extension, e.g. ``frame_00001``."""
    index: int
    """View index in the name-sorted capture (``frame_00001`` -> 0)."""
    height: int
    width: int
    labels: dict[str, LabelTruth]
    """Label -> truth, in the order the labels first appear in the file (the prompt order)."""
    source: Path
    """The JSON file."""
    image_path: Path | None = None
    """The annotated photo beside the JSON (``frame_XXXXX.jpg``/``.png``), when present."""


def frame_index(name: str) -> int:
    """0-based view index of an annotated frame: ``frame_00001[.jpg]`` -> 0 (the number after the
    last ``_``, minus one, as the reference parses ``info.name``)."""
    stem = Path(name).name.split(".")[0]
    digits = stem.rsplit("_", 1)[-1]
    if not digits.isdigit() or int(digits) < 1:
        raise SceneFormatError(f"frame name {name!r} does not end in _<number> counted from 1 (e.g. frame_00001)")
    return int(digits) - 1


def polygon_mask(height: int, width: int, points: Any) -> np.ndarray:
    """``[H, W]`` bool mask of a polygon given as ``[[x, y], ...]``. Vertices are truncated to int32
    and filled with ``cv2.fillPoly`` (boundary pixels included), exactly as the reference does;
    PIL's ``ImageDraw.polygon`` leaves out ~2% of the boundary pixels, which moves IoUs."""
    import cv2

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


def polygon_box(points: Any) -> np.ndarray:
    """``[4]`` ``x1, y1, x2, y2``: the bounding box of the vertices (labelme files carry no box)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def _objects(data: Mapping[str, Any], path: Path) -> tuple[str, int, int, list[tuple[str, Any, np.ndarray]]]:
    """(frame name, H, W, [(label, polygon, box)]) from either JSON flavour."""
    if (
        "objects" in data and "info" in data
    ):  # LERF-OVS release: info{name,height,width}, objects[category, segmentation, bbox]
        info = data["info"]
        name, h, w = str(info["name"]), int(info["height"]), int(info["width"])
        objs = []
        for o in data["objects"]:
            pts = o["segmentation"]
            box = np.asarray(o["bbox"], np.float64).reshape(-1) if "bbox" in o else polygon_box(pts)
            objs.append((str(o["category"]), pts, box))
        return name, h, w, objs
    if "shapes" in data:  # plain labelme: imageHeight/imageWidth/imagePath, shapes[label, points, shape_type]
        name = str(data.get("imagePath") or path.name)
        h, w = int(data["imageHeight"]), int(data["imageWidth"])
        objs = []
        for s in data["shapes"]:
            pts = np.asarray(s["points"], np.float64).reshape(-1, 2)
            if s.get("shape_type", "polygon") == "rectangle" and len(pts) == 2:
                (x1, y1), (x2, y2) = pts
                pts = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
            objs.append((str(s["label"]), pts, polygon_box(pts)))
        return name, h, w, objs
    raise SceneFormatError("neither LERF-OVS ('info' + 'objects') nor labelme ('shapes') annotations")


def load_frame_truth(path: str | os.PathLike[str]) -> FrameTruth:
    """Read one annotation JSON (LERF-OVS release or plain labelme) into masks and boxes."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        name, h, w, objs = _objects(data, path)
    except FileNotFoundError:
        raise MissingFileError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SceneFormatError(f"{path}: not valid JSON ({e})") from e
    except (KeyError, TypeError, ValueError) as e:
        raise SceneFormatError(f"{path}: malformed annotation ({type(e).__name__}: {e})") from e
    if h <= 0 or w <= 0:
        raise SceneFormatError(f"{path}: image size {w}x{h} is not positive")
    if not objs:
        raise SceneFormatError(f"{path}: no annotated objects")
    try:
        index = frame_index(name)
    except ValueError as e:
        raise SceneFormatError(f"{path}: {e}") from e
    labels: dict[str, LabelTruth] = {}
    for label, pts, box in objs:
        try:
            mask = polygon_mask(h, w, pts)
        except Exception as e:  # cv2 raises its own error type for bad point arrays
            raise SceneFormatError(f"{path}: label {label!r}: unusable polygon ({e})") from e
        if label in labels:
            labels[label].mask |= mask
            labels[label].boxes = np.concatenate([labels[label].boxes, box.reshape(1, 4)])
        else:
            labels[label] = LabelTruth(mask, box.reshape(1, 4).astype(np.float64))
    for label, t in labels.items():
        if not t.mask.any():
            raise SceneFormatError(f"{path}: label {label!r} covers no pixel of the {w}x{h} image")
    stem = Path(name).name.split(".")[0]
    image = next(
        (
            p
            for p in (path.with_suffix(".jpg"), path.with_suffix(".png"), path.parent / Path(name).name)
            if p.is_file() and p.suffix.lower() != ".json"
        ),
        None,
    )
    return FrameTruth(stem, index, h, w, labels, path, image)


def load_ground_truth(folder: str | os.PathLike[str]) -> list[FrameTruth]:
    """All ``frame_*.json`` in ``folder`` (name-sorted), as the reference globs them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: ground-truth folder not found")
    paths = sorted(folder.glob("frame_*.json"))
    if not paths:
        raise MissingFileError(f"{folder}: no frame_*.json annotation files")
    frames = [load_frame_truth(p) for p in paths]
    seen: dict[int, Path] = {}
    for f in frames:
        if f.index in seen:
            raise SceneFormatError(f"{f.source}: frame index {f.index} is annotated twice (also in {seen[f.index]})")
        seen[f.index] = f.source
    return frames


# -- relevancy -> mask -------------------------------------------------------------------------
def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()


def avg_pool(x: np.ndarray | torch.Tensor, kernel: int) -> torch.Tensor:
    """``[H, W]`` box mean over a ``kernel`` x ``kernel`` window (odd), stride 1, padding
    ``kernel // 2``, counting only in-image pixels (``AvgPool2d(count_include_pad=False)``)."""
    t = _as_tensor(x)
    return F.avg_pool2d(t[None, None], kernel, stride=1, padding=kernel // 2, count_include_pad=False)[0, 0]


def resize_relevancy(rel: np.ndarray | torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[h, w]`` -> ``[height, width]`` float32, bilinear with ``align_corners=False`` (identity
    when the size already matches)."""
    t = _as_tensor(rel)
    if t.ndim != 2:
        raise ValueError(f"a relevancy map must be [H, W], got shape {list(t.shape)}")
    if tuple(t.shape) == (height, width):
        return t
    return F.interpolate(t[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]


def blend_relevancy(rel: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[H, W]`` 0.5 * (AvgPool29(rel) + rel): the map the segmentation thresholds and whose
    maximum picks the segmentation level."""
    t = _as_tensor(rel)
    return 0.5 * (avg_pool(t, BLEND_KERNEL) + t)


def smooth_mask(mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[H, W]`` bool: AvgPool7 of the binary mask > 0.5 (a local majority vote; the reference's
    ``smooth_mask``/``smooth_cuda``)."""
    return avg_pool(_as_tensor(mask), SMOOTH_KERNEL) > 0.5


def relevancy_to_mask(rel: np.ndarray | torch.Tensor, threshold: float = MASK_THRESHOLD) -> torch.Tensor:
    """``[H, W]`` bool predicted mask of one level's relevancy ``[H, W]`` (already at GT size):
    blend, min-max normalise, * 2 - 1, clip [0, 1], ``> threshold``, then ``smooth_mask``."""
    out = blend_relevancy(rel)
    out = out - out.min()
    out = out / (out.max() + _NORM_EPS)
    out = torch.clip(out * 2.0 - 1.0, 0.0, 1.0)
    return smooth_mask(out > threshold)


def iou(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> float:
    """|pred & gt| / |pred | gt| of two ``[H, W]`` masks (NaN when both are empty, as the reference)."""
    p, g = _as_tensor(pred) > 0, _as_tensor(gt) > 0
    if p.shape != g.shape:
        raise ValueError(f"mask shapes differ: prediction {list(p.shape)}, ground truth {list(g.shape)}")
    union = int((p | g).sum())
    return float("nan") if union == 0 else int((p & g).sum()) / union


def choose_level(scores: Mapping[int, float]) -> int:
    """The level with the highest score; ties go to the lowest level (``torch.argmax`` over the
    levels in order returns the first maximum)."""
    if not scores:
        raise ValueError("no levels to choose from")
    levels = sorted(scores)
    return max(levels, key=lambda lvl: (scores[lvl], -lvl))


@dataclasses.dataclass
class SegmentationResult:
    """One prompt's segmentation outcome."""

    level: int
    """Chosen level: highest maximum of the blended map."""
    iou: float
    """IoU at the chosen level."""
    iou_per_level: dict[int, float]
    mask: np.ndarray
    """``[H, W]`` bool, the chosen level's mask."""


def segment(
    maps: Mapping[int, torch.Tensor], gt_mask: np.ndarray, threshold: float = MASK_THRESHOLD
) -> SegmentationResult:
    """Segment every level's map ``[H, W]`` (GT size), score IoU against ``gt_mask`` ``[H, W]`` and
    pick the level by the maximum of its blended map."""
    masks, ious, scores = {}, {}, {}
    for lvl, rel in maps.items():
        scores[lvl] = float(blend_relevancy(rel).max())
        masks[lvl] = relevancy_to_mask(rel, threshold)
        ious[lvl] = iou(masks[lvl], gt_mask)
    chosen = choose_level(scores)
    return SegmentationResult(chosen, ious[chosen], ious, masks[chosen].numpy())


@dataclasses.dataclass
class LocalisationResult:
    """One prompt's localisation outcome."""

    level: int
    """Level with the highest AvgPool29 peak."""
    peaks: np.ndarray
    """``[P, 2]`` int ``(x, y)`` of every pixel attaining that peak."""
    correct: bool


def points_in_boxes(points_xy: np.ndarray, boxes: np.ndarray) -> bool:
    """Whether any point ``[P, 2]`` (x, y) lies inside any box ``[B, 4]`` (inclusive; corners in
    either order)."""
    pts = np.asarray(points_xy, np.float64).reshape(-1, 2)
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        x0, x1_ = min(x1, x2), max(x1, x2)
        y0, y1_ = min(y1, y2), max(y1, y2)
        if np.any((pts[:, 0] >= x0) & (pts[:, 0] <= x1_) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1_)):
            return True
    return False


def localise(maps: Mapping[int, torch.Tensor], boxes: np.ndarray) -> LocalisationResult:
    """Smooth every level's raw map ``[H, W]`` with AvgPool29, take the level with the highest
    peak, and check whether any of its peak pixels falls in any of ``boxes`` ``[B, 4]``."""
    pooled = {lvl: avg_pool(rel, LOCALISATION_KERNEL) for lvl, rel in maps.items()}
    chosen = choose_level({lvl: float(p.max()) for lvl, p in pooled.items()})
    p = pooled[chosen]
    rows_cols = torch.nonzero(p == p.max()).numpy()
    peaks = rows_cols[:, ::-1].copy()  # (row, col) -> (x, y)
    return LocalisationResult(chosen, peaks, points_in_boxes(peaks, boxes))


def prepare_maps(maps: Mapping[int, Any], height: int, width: int) -> dict[int, torch.Tensor]:
    """Per-level relevancy ``{level: [h, w]}`` resized to the annotation size, levels sorted."""
    if not maps:
        raise ValueError("the relevancy provider returned no levels")
    return {int(lvl): resize_relevancy(maps[lvl], height, width) for lvl in sorted(maps)}


def evaluate_prompt(
    maps: Mapping[int, Any], truth: LabelTruth, threshold: float = MASK_THRESHOLD
) -> tuple[SegmentationResult, LocalisationResult, dict[int, torch.Tensor]]:
    """Segmentation and localisation of one prompt from its per-level maps (any size; resized to the
    truth mask's size). Also returns the resized maps."""
    h, w = truth.mask.shape
    resized = prepare_maps(maps, h, w)
    return segment(resized, truth.mask, threshold), localise(resized, truth.boxes), resized


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-name-safe form of a label or scene name."""
    return _NAME_OK.sub("_", text).strip("_") or "unnamed"
