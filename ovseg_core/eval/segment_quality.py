"""Segment quality against known per-Gaussian labels: 3D IoU of prompt selections, 2D IoU of
per-pixel masks on held-out views, and instance coverage. Used by ``ovseg-bench quality`` and
the tests on ``faint_capture`` scenes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from ovseg_core.camera import Camera
from ovseg_core.fields.relevancy import FieldQuery, QuerySettings
from ovseg_core.render import Renderer
from ovseg_core.render.pixel_answer import answers_per_pixel, from_shown, shown_gaussians
from ovseg_core.synthetic.faint_capture import FaintCapture, region_labels, top_labels

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two boolean arrays (1.0 when both are empty)."""
    union = int((pred | truth).sum())
    return float((pred & truth).sum()) / union if union else 1.0


@dataclasses.dataclass
class ObjectQuality:
    """How well one object's prompt selects it."""

    name: str
    iou3d: float
    """Per-Gaussian IoU of the selection at the default threshold."""
    iou3d_raw: float
    """... of the plain selection (relevancy > threshold, no spatial consistency)."""
    iou3d_best: float
    """... at the best threshold of ``THRESHOLDS``."""
    best_threshold: float
    iou2d: float
    """Mean over held-out views (where the object shows) of the IoU of the pixel answer at the
    default threshold (``ovseg_core.render.pixel_answer``: the 3D answer's Gaussians shown there)
    with the object's true pixels (by default ``top_labels``: the label of the Gaussian with the
    most blending weight)."""
    iou2d_best: float = float("nan")
    """... at the best threshold of ``THRESHOLDS`` (one threshold for all the views)."""
    best_threshold_2d: float = float("nan")
    iou2d_codes: float = float("nan")
    """... of LERF's per-pixel score (each pixel's blended feature, as ``eval-lerf`` scores) above
    the default threshold, for comparison."""
    iou2d_codes_best: float = float("nan")
    """... at its best threshold."""
    iou2d_regions: float = float("nan")
    """``iou2d`` against ``region_labels`` instead (the region with the most blended weight, a
    secondary definition of a pixel's truth; no top-1 rule can match it where faint regions mix)."""


def object_quality(
    capture: FaintCapture,
    query: FieldQuery,
    renderer: Renderer,
    held_out: Sequence[Camera],
    *,
    threshold: float = 0.5,
    settings: QuerySettings = QuerySettings(),
    select: Callable[[np.ndarray, float, int], np.ndarray] | None = None,
    truth_labels: Callable[[Camera], np.ndarray] | None = None,
) -> list[ObjectQuality]:
    """Per object: query its name, compare the Gaussians above the threshold (through ``select``
    (relevancy, threshold, level) -> [N] bool when given, e.g. a spatially consistent selection) with its
    true Gaussians, and its pixel answer (and LERF's per-pixel score) at the threshold and at each of
    ``THRESHOLDS`` with its true pixels (``truth_labels(camera)`` [H, W], default ``top_labels``)
    in every held-out view, and the pixel answer at the threshold with ``region_labels``."""
    truth_ids = capture.object_ids
    select = select or (lambda rel, t, lvl: rel > t)
    truth_labels = truth_labels or (lambda cam: top_labels(capture, renderer, cam))
    labels = [truth_labels(cam) for cam in held_out]
    regions = [region_labels(capture, renderer, cam) for cam in held_out]
    codes = [{lvl: query.render_codes(renderer, capture.scene, cam, lvl) for lvl in query.levels} for cam in held_out]
    shown = [shown_gaussians(renderer.render(capture.scene, cam, top_k=1)) for cam in held_out]
    out = []
    for k, name in enumerate(capture.object_names):
        rel, lvl = query.gaussian_relevancy(name, settings)
        truth = truth_ids == k
        answers = [select(rel, float(t), lvl) for t in THRESHOLDS]
        ious = [iou(a, truth) for a in answers]
        best = int(np.argmax(ious))
        answer = select(rel, threshold, lvl)
        sweep = np.stack(answers, 1)  # [N, T]: every threshold's answer, for its pixels in one look-up
        rule, rule_sweep, lerf, lerf_sweep, by_region = [], [], [], [], []
        for cam, lab, reg, c, seen in zip(held_out, labels, regions, codes, shown):
            shown_answer = from_shown(seen, rel, answer, threshold).answer
            if (reg == k).any():
                by_region.append(iou(shown_answer, reg == k))
            gt = lab == k
            if not gt.any():
                continue
            rule.append(iou(shown_answer, gt))
            per_t = answers_per_pixel(seen, sweep)
            rule_sweep.append([iou(per_t[..., i], gt) for i in range(len(THRESHOLDS))])
            pix, _ = query.pixel_relevancy(renderer, capture.scene, cam, name, settings, code_images=c)
            lerf.append(iou(pix > threshold, gt))
            lerf_sweep.append([iou(pix > t, gt) for t in THRESHOLDS])
        b2, m2 = _best(rule_sweep)
        _, m2_codes = _best(lerf_sweep)
        out.append(
            ObjectQuality(
                name=name,
                iou3d=iou(answer, truth),
                iou3d_raw=iou(rel > threshold, truth),
                iou3d_best=float(ious[best]),
                best_threshold=float(THRESHOLDS[best]),
                iou2d=_mean(rule),
                iou2d_best=m2,
                best_threshold_2d=b2,
                iou2d_codes=_mean(lerf),
                iou2d_codes_best=m2_codes,
                iou2d_regions=_mean(by_region),
            )
        )
    return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _best(per_view: list[list[float]]) -> tuple[float, float]:
    """(threshold, mean IoU) of the best of ``THRESHOLDS`` for ``per_view`` [views][thresholds]."""
    if not per_view:
        return float("nan"), float("nan")
    mean = np.mean(per_view, axis=0)
    b = int(np.argmax(mean))
    return float(THRESHOLDS[b]), float(mean[b])


@dataclasses.dataclass
class InstanceQuality:
    """How one object ended up in the instances."""

    name: str
    coverage: float
    """Fraction of the object's Gaussians in its best-matching instance."""
    iou: float
    """IoU of that instance with the object."""
    split: bool
    """Another instance holds >= 20% of the object's Gaussians."""
    absorbed: bool
    """The best-matching instance is mostly something else (another object or the background)."""


def instance_quality(capture: FaintCapture, labels: np.ndarray) -> list[InstanceQuality]:
    """Per object, its best instance (by IoU) among ``labels`` [N] (-1 = no instance)."""
    truth_ids = capture.object_ids
    out = []
    for k, name in enumerate(capture.object_names):
        truth = truth_ids == k
        inst, counts = np.unique(labels[truth & (labels >= 0)], return_counts=True)
        if len(inst) == 0:
            out.append(InstanceQuality(name, 0.0, 0.0, False, False))
            continue
        ious = [iou(labels == i, truth) for i in inst]
        b = int(np.argmax(ious))
        members = labels == inst[b]
        out.append(
            InstanceQuality(
                name=name,
                coverage=float(counts[b] / truth.sum()),
                iou=float(ious[b]),
                split=bool(np.any(np.delete(counts, b) >= 0.2 * truth.sum())),
                absorbed=bool((truth_ids[members] == k).mean() < 0.5),
            )
        )
    return out
