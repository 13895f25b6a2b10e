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
from ovseg_core.synthetic.faint_capture import FaintCapture, region_labels

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
    """Mean over held-out views (where the object shows) of the pixel mask's IoU at the default threshold."""
    iou2d_best: float = float("nan")
    """... at the best threshold of ``THRESHOLDS`` (one threshold for all the views)."""
    best_threshold_2d: float = float("nan")


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
    true Gaussians, and the pixels above the threshold (and above each of ``THRESHOLDS``) with its true
    pixels (``truth_labels(camera)`` [H, W], default ``region_labels``) in every held-out view."""
    truth_ids = capture.object_ids
    select = select or (lambda rel, t, lvl: rel > t)
    labels = [
        truth_labels(cam) if truth_labels is not None else region_labels(capture, renderer, cam) for cam in held_out
    ]
    codes = [{lvl: query.render_codes(renderer, capture.scene, cam, lvl) for lvl in query.levels} for cam in held_out]
    out = []
    for k, name in enumerate(capture.object_names):
        rel, lvl = query.gaussian_relevancy(name, settings)
        truth = truth_ids == k
        ious = [iou(select(rel, float(t), lvl), truth) for t in THRESHOLDS]
        best = int(np.argmax(ious))
        at_default, per_threshold = [], []
        for cam, lab, c in zip(held_out, labels, codes):
            if not (lab == k).any():
                continue
            pix, _ = query.pixel_relevancy(renderer, capture.scene, cam, name, settings, code_images=c)
            at_default.append(iou(pix > threshold, lab == k))
            per_threshold.append([iou(pix > t, lab == k) for t in THRESHOLDS])
        mean2d = np.mean(per_threshold, axis=0) if per_threshold else np.full(len(THRESHOLDS), np.nan)
        best2d = int(np.nanargmax(mean2d)) if per_threshold else 0
        out.append(
            ObjectQuality(
                name=name,
                iou3d=iou(select(rel, threshold, lvl), truth),
                iou3d_raw=iou(rel > threshold, truth),
                iou3d_best=float(ious[best]),
                best_threshold=float(THRESHOLDS[best]),
                iou2d=float(np.mean(at_default)) if at_default else float("nan"),
                iou2d_best=float(mean2d[best2d]),
                best_threshold_2d=float(THRESHOLDS[best2d]) if per_threshold else float("nan"),
            )
        )
    return out


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
