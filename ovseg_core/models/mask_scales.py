"""Multi-scale mask grouping and LangSplat's mask NMS, in numpy (no model needed).

LangSplat / LangSplatV2 preprocessing: split SAM's masks by area into small (< 1% of the image),
medium (1-10%) and large (>= 10%) next to "default" (all of them), then clean each scale on its own
with ``mask_nms`` (the semantics of LangSplat's ``masks_update``/``mask_nms``).
"""

from __future__ import annotations

import numpy as np

from ovseg_core.models.protocols import SCALES, MaskSet

SMALL_MAX_FRACTION = 0.01
"""Masks below this fraction of the image area are "s"."""
LARGE_MIN_FRACTION = 0.1
"""Masks at or above this fraction of the image area are "l"; the rest are "m"."""

# LangSplat's containment test: a mask "inside" another has >= 85% of its pixels in it while the overlap
# is < 50% of the container. Fixed constants in the original, so not parameters here.
_INSIDE_MIN = 0.85
_CONTAINER_MAX = 0.5

# Rows x pixels per block when counting pairwise intersections (bounds float32 scratch memory to
# ~128 MiB and keeps every partial count below 2**24, where float32 counts are exact).
_BLOCK_ELEMENTS = 1 << 25
_BLOCK_MAX_PIXELS = 1 << 22


def take(masks: MaskSet, index: np.ndarray) -> MaskSet:
    """The masks at ``index`` ([K] int or [M] bool), in that order."""
    return MaskSet(
        segmentations=masks.segmentations[index],
        bboxes=masks.bboxes[index],
        areas=masks.areas[index],
        predicted_ious=masks.predicted_ious[index],
        stability_scores=masks.stability_scores[index],
    )


def group_by_scale(masks: MaskSet, image_area: int | None = None) -> dict[str, MaskSet]:
    """Split ``masks`` by area fraction into {"default": all, "s": < 1%, "m": 1-10%, "l": >= 10%}.

    ``image_area`` defaults to H * W of the segmentations. Order within each scale is kept.
    """
    if image_area is None:
        image_area = int(masks.segmentations.shape[1] * masks.segmentations.shape[2])
    if image_area <= 0:
        raise ValueError(f"image_area must be positive, got {image_area}")
    fraction = masks.areas.astype(np.float64) / float(image_area)
    small = fraction < SMALL_MAX_FRACTION
    large = fraction >= LARGE_MIN_FRACTION
    groups = {"default": np.ones(len(masks), bool), "s": small, "m": ~small & ~large, "l": large}
    return {scale: take(masks, groups[scale]) for scale in SCALES}


def pairwise_intersections(segmentations: np.ndarray) -> np.ndarray:
    """[M, H, W] bool -> [M, M] float64 pixel counts of every pair's intersection (diagonal = areas)."""
    m = segmentations.shape[0]
    flat = segmentations.reshape(m, -1)
    block = int(max(1, min(_BLOCK_MAX_PIXELS, _BLOCK_ELEMENTS // max(m, 1))))
    inter = np.zeros((m, m), np.float64)
    for start in range(0, flat.shape[1], block):
        part = flat[:, start : start + block].astype(np.float32)
        inter += part @ part.T  # BLAS on 0/1 floats: exact counts per block
    return inter


def mask_nms_keep(
    segmentations: np.ndarray,
    scores: np.ndarray,
    iou_thr: float = 0.8,
    score_thr: float = 0.7,
    inner_thr: float = 0.5,
) -> np.ndarray:
    """LangSplat's mask NMS: indices ([K] int64, ascending) of the masks to keep.

    ``segmentations`` [M, H, W] bool, ``scores`` [M] (LangSplat: predicted_iou * stability_score).
    A mask is dropped when any of these holds:

    - its IoU with some higher-scored mask exceeds ``iou_thr``. Every higher-scored mask counts, kept
      or not: the original compares against the whole sorted list, not greedily;
    - it lies inside another mask of any score (>= 85% of it overlaps the other, and the overlap is
      < 50% of the other) with ``overlap/own_area * overlap/other_area < inner_thr``;
    - its score is not above ``score_thr``; when no mask's is, the three best count as above it.

    Ties in score keep their input order (stable sort). The original's fallbacks for the two
    containment tests can never fire (the largest mask is inside nothing), so they are not repeated.
    """
    scores = np.asarray(scores, np.float64)
    m = int(segmentations.shape[0])
    if scores.shape != (m,):
        raise ValueError(f"scores must have shape [{m}], got {list(scores.shape)}")
    if m == 0:
        return np.zeros((0,), np.int64)

    order = np.argsort(-scores, kind="stable")
    inter = pairwise_intersections(segmentations[order])
    area = np.diag(inter).copy()
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
        # share[a, b]: fraction of mask a's pixels that are also in mask b
        share = np.where(area[:, None] > 0, inter / area[:, None], 0.0)

    # IoU with any higher-ranked mask (strict upper triangle, max over rows for each column)
    iou_max = np.triu(iou, k=1).max(axis=0)
    keep = iou_max <= iou_thr

    inside = (share >= _INSIDE_MIN) & (share.T < _CONTAINER_MAX)  # [a, b]: a lies inside b
    inner_score = np.where(inside, 1.0 - share * share.T, 0.0)
    keep &= inner_score.max(axis=1) <= 1.0 - inner_thr

    sorted_scores = scores[order]
    confident = sorted_scores > score_thr
    if not confident.any():
        confident[: min(3, m)] = True  # sorted order: the first three are the best
    keep &= confident
    return np.sort(order[keep]).astype(np.int64)


def mask_nms(masks: MaskSet, iou_thr: float = 0.8, score_thr: float = 0.7, inner_thr: float = 0.5) -> MaskSet:
    """``masks`` without LangSplat's redundant ones (see ``mask_nms_keep``), scored by
    predicted_iou * stability_score; survivors keep their input order."""
    scores = masks.predicted_ious.astype(np.float64) * masks.stability_scores.astype(np.float64)
    return take(masks, mask_nms_keep(masks.segmentations, scores, iou_thr, score_thr, inner_thr))


def scales_with_nms(
    masks: MaskSet,
    image_area: int | None = None,
    iou_thr: float = 0.8,
    score_thr: float = 0.7,
    inner_thr: float = 0.5,
) -> dict[str, MaskSet]:
    """``group_by_scale`` then ``mask_nms`` on each scale separately (the LangSplat order)."""
    return {
        scale: mask_nms(group, iou_thr, score_thr, inner_thr)
        for scale, group in group_by_scale(masks, image_area).items()
    }
