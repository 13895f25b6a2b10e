"""The LERF-OVS evaluation loop: annotated frames -> per-prompt IoU and localisation -> per-scene and
overall figures, a JSON report and per-frame pictures.

Figures come two ways: *scene-weighted* (the mean of the scenes' means, as the reference's
``lerf_results.json`` "overall") and *query-weighted* (every prompt of every scene counts once;
published LangSplatV2 localisation, 84.1, is this one).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ovseg_core.camera import Camera
from ovseg_core.errors import UsageError
from ovseg_core.eval import lerf_ovs as lo
from ovseg_core.eval.providers import RelevancyProvider
from ovseg_core.eval.visualize import frame_picture, prompt_panel
from ovseg_core.io.atomic import atomic_write_bytes


class EvalViews(Protocol):
    """The capture the annotations index: name-sorted views (``ovseg_core.data.ViewDataset``)."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Any: ...  # has .camera: Camera

    def load_image(self, i: int) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation options."""

    mask_threshold: float = lo.MASK_THRESHOLD
    """Threshold on the normalised, stretched and clipped map (reference default 0.4)."""
    save_visualizations: bool = True
    """Write ``<scene>/frame_XXXXX.png`` pictures."""


@dataclasses.dataclass
class PromptResult:
    """One prompt (label) of one annotated frame."""

    frame: str
    label: str
    iou: float
    level: int
    """Segmentation level (highest blended maximum)."""
    iou_per_level: dict[int, float]
    localized: bool
    localization_level: int


@dataclasses.dataclass
class SceneResult:
    """One scene's prompts and means."""

    name: str
    prompts: list[PromptResult]

    @property
    def miou(self) -> float:
        """Mean IoU over the scene's prompts."""
        return lo.mean([p.iou for p in self.prompts])

    @property
    def localization(self) -> float:
        """Fraction of the scene's prompts localised."""
        return lo.mean([float(p.localized) for p in self.prompts])

    def summary(self) -> dict[str, Any]:
        return {
            "scene": self.name,
            "num_queries": len(self.prompts),
            "mean_iou": self.miou,
            "localization_accuracy": self.localization,
            "localization_correct": sum(p.localized for p in self.prompts),
        }


@dataclasses.dataclass
class EvalResult:
    """All scenes, with both weightings of the overall figures."""

    scenes: list[SceneResult]
    config: EvalConfig = EvalConfig()

    @property
    def _all(self) -> list[PromptResult]:
        return [p for s in self.scenes for p in s.prompts]

    @property
    def miou_scene_weighted(self) -> float:
        return lo.mean([s.miou for s in self.scenes])

    @property
    def miou_query_weighted(self) -> float:
        return lo.mean([p.iou for p in self._all])

    @property
    def localization_scene_weighted(self) -> float:
        return lo.mean([s.localization for s in self.scenes])

    @property
    def localization_query_weighted(self) -> float:
        return lo.mean([float(p.localized) for p in self._all])

    def to_json(self) -> dict[str, Any]:
        return {
            "overall": {
                "mean_iou_scene_weighted": self.miou_scene_weighted,
                "mean_iou_query_weighted": self.miou_query_weighted,
                "localization_accuracy_scene_weighted": self.localization_scene_weighted,
                "localization_accuracy_query_weighted": self.localization_query_weighted,
                "num_scenes": len(self.scenes),
                "num_queries": len(self._all),
            },
            "scenes": [
                {**s.summary(), "prompts": [_plain(dataclasses.asdict(p)) for p in s.prompts]} for s in self.scenes
            ],
            "config": dataclasses.asdict(self.config),
        }

    def table(self) -> str:
        """A per-scene table and the overall figures (percentages)."""
        width = max([len("overall (query-weighted)")] + [len(s.name) for s in self.scenes])
        lines = [f"{'scene':<{width}}  {'queries':>7}  {'mIoU':>6}  {'loc.acc':>7}"]
        for s in self.scenes:
            lines.append(
                f"{s.name:<{width}}  {len(s.prompts):>7}  {100 * s.miou:>5.1f}%  {100 * s.localization:>6.1f}%"
            )
        lines.append("-" * len(lines[0]))
        n = len(self._all)
        lines.append(
            f"{'overall (scene-weighted)':<{width}}  {n:>7}  {100 * self.miou_scene_weighted:>5.1f}%  "
            f"{100 * self.localization_scene_weighted:>6.1f}%"
        )
        lines.append(
            f"{'overall (query-weighted)':<{width}}  {n:>7}  {100 * self.miou_query_weighted:>5.1f}%  "
            f"{100 * self.localization_query_weighted:>6.1f}%"
        )
        return "\n".join(lines)


@dataclasses.dataclass
class LerfScene:
    """One scene to evaluate."""

    name: str
    gt_dir: Path
    """Folder of ``frame_XXXXX.json`` annotations (and optionally their photos)."""
    provider: RelevancyProvider
    dataset: EvalViews
    """Name-sorted views; annotated ``frame_00001`` is view 0."""


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not np.isfinite(v):
        return None  # JSON has no NaN
    return v


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(_plain(data), indent=2) + "\n").encode())


def _photo(frame: lo.FrameTruth, dataset: EvalViews) -> np.ndarray:
    """``[H, W, 3]`` uint8 at the annotation size: the annotated photo if it sits beside the JSON,
    else the capture's view."""
    if frame.image_path is not None:
        with Image.open(frame.image_path) as im:
            rgb = im.convert("RGB")
    else:
        rgb = Image.fromarray(dataset.load_image(frame.index))
    if rgb.size != (frame.width, frame.height):
        rgb = rgb.resize((frame.width, frame.height), Image.Resampling.BILINEAR)
    return np.asarray(rgb, np.uint8)


def evaluate_scene(
    scene: LerfScene, out_dir: str | os.PathLike[str] | None, config: EvalConfig = EvalConfig()
) -> SceneResult:
    """Evaluate every annotated frame of one scene. With ``out_dir``, writes
    ``<out_dir>/<scene>/results.json`` and (``config.save_visualizations``) one PNG per frame."""
    frames = lo.load_ground_truth(scene.gt_dir)
    n = len(scene.dataset)
    for f in frames:
        if f.index >= n:
            raise UsageError(
                f"{f.source}: annotates view {f.index} ({f.name}) but the capture has only {n} views "
                f"(frame_00001 is the first view in name order)"
            )
    scene_dir = Path(out_dir) / lo.safe_name(scene.name) if out_dir is not None else None
    results: list[PromptResult] = []
    for f in frames:
        camera: Camera = scene.dataset[f.index].camera
        panels = []
        for label, truth in f.labels.items():
            maps = scene.provider.relevancy(f.index, camera, label)
            seg, loc, resized = lo.evaluate_prompt(maps, truth, config.mask_threshold)
            results.append(PromptResult(f.name, label, seg.iou, seg.level, seg.iou_per_level, loc.correct, loc.level))
            if scene_dir is not None and config.save_visualizations:
                caption = (
                    f"{label}: IoU {100 * seg.iou:.1f}% (level {seg.level}), loc {'ok' if loc.correct else 'miss'}"
                )
                panels.append((resized[seg.level].numpy(), truth.mask, seg.mask, loc.peaks, caption))
        if panels:
            import imageio.v3 as iio

            rgb = _photo(f, scene.dataset)
            pic = frame_picture([prompt_panel(rgb, *p) for p in panels])
            atomic_write_bytes(scene_dir / f"{f.name}.png", iio.imwrite("<bytes>", pic, extension=".png"))
    result = SceneResult(scene.name, results)
    if scene_dir is not None:
        _write_json(
            scene_dir / "results.json", {**result.summary(), "prompts": [dataclasses.asdict(p) for p in results]}
        )
    return result


def evaluate_scenes(
    scenes: Sequence[LerfScene], out_dir: str | os.PathLike[str] | None, config: EvalConfig = EvalConfig()
) -> EvalResult:
    """Evaluate several scenes; with ``out_dir`` also writes ``<out_dir>/lerf_results.json``."""
    names = [lo.safe_name(s.name) for s in scenes]
    if len(set(names)) != len(names):
        raise UsageError(f"scene names must be distinct (they name output folders): {[s.name for s in scenes]}")
    result = EvalResult([evaluate_scene(s, out_dir, config) for s in scenes], config)
    if out_dir is not None:
        _write_json(Path(out_dir) / "lerf_results.json", result.to_json())
    return result


def evaluate_lerf(
    gt_dir: str | os.PathLike[str],
    provider: RelevancyProvider,
    dataset: EvalViews,
    out_dir: str | os.PathLike[str] | None,
    *,
    name: str | None = None,
    config: EvalConfig = EvalConfig(),
) -> EvalResult:
    """Evaluate one scene (named after ``gt_dir`` unless ``name``) - see ``evaluate_scenes``."""
    gt = Path(gt_dir)
    return evaluate_scenes([LerfScene(name or gt.name, gt, provider, dataset)], out_dir, config)
