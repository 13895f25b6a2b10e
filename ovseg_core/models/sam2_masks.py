"""SAM 2's automatic mask generator as a ``MaskGenerator``, with LangSplatV2's scales and mask NMS.

sam2 (and hydra) are imported inside functions so ``import ovseg_core`` stays light.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.errors import ModelLoadError, UsageError
from ovseg_core.models._device import resolve_device, seeded
from ovseg_core.models.config import SAM2_CHECKPOINTS, Sam2Config
from ovseg_core.models.mask_scales import scales_with_nms
from ovseg_core.models.protocols import MaskSet

SAM2_INSTALL_HINT = "SAM2_BUILD_CUDA=0 pip install --no-build-isolation 'ovseg[sam2]'"
"""sam2 is an sdist that compiles against the installed torch, hence no build isolation."""


def _sam2_module(name: str) -> Any:
    """``sam2.<name>``, or a ``ModelLoadError`` that says how to install SAM 2 (it is an optional extra)."""
    import importlib

    try:
        return importlib.import_module(f"sam2.{name}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "sam2":
            raise
        raise ModelLoadError(f"SAM 2 is not installed (the mask generator needs it): {SAM2_INSTALL_HINT}") from exc


def settings_tag(config: Sam2Config) -> str:
    """Every setting that changes the masks, as a short string (part of ``Sam2MaskGenerator.name``)."""
    c = config
    return (
        f"pps{c.points_per_side}-iou{c.pred_iou_thresh:g}-stab{c.stability_score_thresh:g}"
        f"-crop{c.crop_n_layers}x{c.crop_n_points_downscale_factor}-min{c.min_mask_region_area}"
        f"-box{c.box_nms_thresh:g}-nms{c.nms_iou_thr:g}/{c.nms_score_thr:g}/{c.nms_inner_thr:g}"
    )


class Sam2MaskGenerator:
    """``MaskGenerator`` on ``SAM2AutomaticMaskGenerator``: masks -> four scales -> mask NMS per scale.

    ``from_config`` loads weights; the constructor wraps an already-built sam2 model (kept on its device;
    ``config.device`` is then unused).
    """

    def __init__(self, model: torch.nn.Module, config: Sam2Config | None = None, *, weights: str) -> None:
        """``model``: a ``sam2.modeling.sam2_base.SAM2Base`` (from ``build_sam2``). ``weights``: names them
        (e.g. "sam2.1-hiera-large", or a file name and size) for ``name``."""
        SAM2AutomaticMaskGenerator = _sam2_module("automatic_mask_generator").SAM2AutomaticMaskGenerator

        self.config = config = config or Sam2Config()
        self.model = model
        self.name = f"sam2:{weights}:{settings_tag(config)}"
        self._generator = SAM2AutomaticMaskGenerator(
            model,
            points_per_side=config.points_per_side,
            points_per_batch=config.points_per_batch,
            pred_iou_thresh=config.pred_iou_thresh,
            stability_score_thresh=config.stability_score_thresh,
            crop_n_layers=config.crop_n_layers,
            crop_n_points_downscale_factor=config.crop_n_points_downscale_factor,
            min_mask_region_area=config.min_mask_region_area,
            box_nms_thresh=config.box_nms_thresh,
            output_mode="binary_mask",
        )
        _ensure_small_region_postprocessing(self._generator.predictor._transforms)

    @classmethod
    def from_config(cls, config: Sam2Config | None = None) -> Sam2MaskGenerator:
        """Build SAM 2 from ``config`` (hub download or ``checkpoint_path``); ``ModelLoadError`` if impossible."""
        config = config or Sam2Config()
        if config.checkpoint not in SAM2_CHECKPOINTS:
            raise UsageError(f"checkpoint must be one of {list(SAM2_CHECKPOINTS)}, got {config.checkpoint!r}")
        build_sam2 = _sam2_module("build_sam").build_sam2

        device = resolve_device(config.device)
        hub_id, model_cfg, filename = SAM2_CHECKPOINTS[config.checkpoint]
        if config.checkpoint_path is not None:
            path = Path(config.checkpoint_path).expanduser()
            if not path.is_file():
                raise ModelLoadError(_load_advice(config, f"checkpoint file {str(path)!r} does not exist"))
            weights = f"{Path(model_cfg).stem}:{path.name}:{path.stat().st_size}B"
        else:
            from huggingface_hub import hf_hub_download

            try:
                path = Path(hf_hub_download(repo_id=hub_id, filename=filename))
            except Exception as exc:  # offline, no such repo, HTTP errors: all mean "no weights"
                raise ModelLoadError(_load_advice(config, f"download from {hub_id} failed ({exc})")) from exc
            weights = hub_id.split("/")[-1]
        try:
            model = build_sam2(model_cfg, ckpt_path=str(path), device=str(device))
        except Exception as exc:  # sam2 raises bare RuntimeError/KeyError on a mismatched state dict
            raise ModelLoadError(
                _load_advice(config, f"{str(path)!r} does not load into {model_cfg} ({type(exc).__name__}: {exc})")
            ) from exc
        return cls(model, config, weights=weights)

    def generate(self, image: np.ndarray) -> dict[str, MaskSet]:
        """``image`` [H, W, 3] uint8 RGB -> {scale: MaskSet} for every scale in ``SCALES``.

        Bounding boxes are SAM's XYWH: x, y = first mask column/row, w = last column - x (so the box
        spans columns x..x+w inclusive). Empty masks are dropped.
        """
        image = check_image(image, self.name)
        height, width = image.shape[:2]
        records = self._generator.generate(image)
        masks = records_to_maskset(records, height, width)
        c = self.config
        return scales_with_nms(masks, height * width, c.nms_iou_thr, c.nms_score_thr, c.nms_inner_thr)

    def __repr__(self) -> str:
        return f"Sam2MaskGenerator(name={self.name!r})"


def check_image(image: Any, who: str = "mask generator") -> np.ndarray:
    """Validate an [H, W, 3] uint8 RGB array (ValueError naming what is wrong); returns it contiguous."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{who}: image must be a numpy [H, W, 3] uint8 array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{who}: image must have shape [H, W, 3] (RGB), got {list(image.shape)}")
    if image.dtype != np.uint8:
        raise ValueError(f"{who}: image must be uint8 RGB in 0..255, got dtype {image.dtype}")
    return np.ascontiguousarray(image)


def records_to_maskset(records: list[dict[str, Any]], height: int, width: int) -> MaskSet:
    """SAM's list of mask dicts (binary_mask output) -> MaskSet, without empty masks."""
    records = [r for r in records if np.any(r["segmentation"])]
    if not records:
        return MaskSet.empty(height, width)
    segmentations = np.stack([np.asarray(r["segmentation"], bool) for r in records])
    return MaskSet(
        segmentations=segmentations,
        bboxes=np.asarray([r["bbox"] for r in records], np.float32).reshape(-1, 4),
        areas=segmentations.reshape(len(records), -1).sum(axis=1).astype(np.int64),
        predicted_ious=np.asarray([r["predicted_iou"] for r in records], np.float32),
        stability_scores=np.asarray([r["stability_score"] for r in records], np.float32),
    )


def _load_advice(config: Sam2Config, cause: str) -> str:
    hub_id, model_cfg, filename = SAM2_CHECKPOINTS[config.checkpoint]
    return (
        f"cannot load SAM 2.1 '{config.checkpoint}' weights: {cause}. The weights download once from the "
        f"Hugging Face hub ({hub_id}, file {filename}; needs network, then cached). Offline, download that "
        f"file elsewhere and pass Sam2Config(checkpoint={config.checkpoint!r}, "
        "checkpoint_path='/path/to/" + filename + "'); the file must match the checkpoint size "
        f"(model config {model_cfg})."
    )


# --- min_mask_region_area without sam2's CUDA extension ------------------------------------------------
# sam2 fills small holes and removes small islands of its low-res masks with a connected-components
# kernel from its optional CUDA extension (sam2._C). Installed with SAM2_BUILD_CUDA=0 it has none, and
# sam2 then skips the step with a warning on every batch, so min_mask_region_area would silently do
# nothing. Where the extension is missing we run the same step with OpenCV (8-connectivity, areas in
# low-res pixels, holes and islands both found on the masks as decoded), which gives the same masks.


def _ensure_small_region_postprocessing(transforms: torch.nn.Module) -> None:
    if transforms.max_hole_area <= 0 and transforms.max_sprinkle_area <= 0:
        return
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        transforms.postprocess_masks = functools.partial(_postprocess_masks, transforms)


def small_components(masks: torch.Tensor, max_area: float) -> torch.Tensor:
    """[N, 1, H, W] bool -> [N, 1, H, W] bool: pixels of 8-connected foreground components of at most
    ``max_area`` pixels (what sam2's ``get_connected_components`` counts are used for)."""
    import cv2

    flat = masks.reshape(-1, *masks.shape[-2:]).to("cpu", torch.uint8).numpy()
    out = np.zeros(flat.shape, bool)
    for i, mask in enumerate(flat):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        small = stats[:, cv2.CC_STAT_AREA] <= max_area
        small[0] = False  # label 0 is the background
        if small.any():  # most masks have none; skip the per-pixel lookup
            out[i] = small[labels]
    return torch.from_numpy(out).reshape(masks.shape).to(masks.device)


def _postprocess_masks(transforms: Any, masks: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
    """``SAM2Transforms.postprocess_masks`` with ``small_components`` in place of the CUDA kernel:
    [B, C, h, w] low-res logits -> [B, C, H, W] logits at ``orig_hw``."""
    masks = masks.float()
    threshold = transforms.mask_threshold
    decoded = masks.flatten(0, 1).unsqueeze(1)
    if transforms.max_hole_area > 0:
        holes = small_components(decoded <= threshold, transforms.max_hole_area).reshape_as(masks)
        masks = torch.where(holes, threshold + 10.0, masks)
    if transforms.max_sprinkle_area > 0:
        islands = small_components(decoded > threshold, transforms.max_sprinkle_area).reshape_as(masks)
        masks = torch.where(islands, threshold - 10.0, masks)
    return F.interpolate(masks, orig_hw, mode="bilinear", align_corners=False)


# --- tiny model for tests ------------------------------------------------------------------------------


def tiny_sam2(points_per_side: int = 4, seed: int = 0) -> Sam2MaskGenerator:
    """SAM 2.1 hiera-t with random (seeded) weights on CPU and a small point grid, for tests.

    A random decoder predicts IoUs near 0.5 and logits so close to 0 that every stability score is 0,
    so the usual thresholds (pred IoU, stability, NMS score) would drop every mask: they are 0 here.
    Its masks also cover most of the image with boxes spanning all of it, so box NMS is off (1.0) to
    keep several of them; LangSplat's mask NMS still removes duplicates. No crop layers: one image
    encode (~3 s on 2 CPU cores).
    """
    build_sam2 = _sam2_module("build_sam").build_sam2

    config = Sam2Config(
        checkpoint="tiny",
        points_per_side=points_per_side,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        crop_n_layers=0,
        box_nms_thresh=1.0,
        nms_score_thr=0.0,
        device="cpu",
    )
    with seeded(seed):
        model = build_sam2(SAM2_CHECKPOINTS["tiny"][1], ckpt_path=None, device="cpu")
    return Sam2MaskGenerator(model, config, weights=f"sam2.1-hiera-tiny:random-seed{seed}")
