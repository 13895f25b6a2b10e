"""Multi-scale masks and CLIP features for every view of a dataset, cached on disk."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.data.view_dataset import ViewDataset
from ovseg_core.errors import Cancelled, UsageError
from ovseg_core.models.protocols import SCALES, ImageEncoder, MaskGenerator, MaskSet
from ovseg_core.preprocess.cache import CachedViewFeatures, FeatureCache, file_sha256
from ovseg_core.preprocess.crops import mask_crops
from ovseg_core.preprocess.view_features import ViewFeatures, build_seg_maps

DEFAULT_BATCH_SIZE = 64
CACHE_SUBDIR = Path(".ovseg_cache") / "preprocess"


class CancelEvent(Protocol):
    """Anything with ``is_set()``, e.g. ``threading.Event``."""

    def is_set(self) -> bool: ...


def preprocess_views(
    dataset: ViewDataset,
    mask_generator: MaskGenerator,
    image_encoder: ImageEncoder,
    cache_dir: str | os.PathLike[str] | None = None,
    indices: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelEvent | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fuse_global: bool = False,
    fusion_temperature: float = 1.0,
    on_view: Callable[[int, bool], None] | None = None,
) -> CachedViewFeatures:
    """Masks and CLIP features of dataset views, computed once and then read from the cache.

    Args:
        dataset: The views; images are processed at their (downsampled) camera size.
        mask_generator: Image -> masks of the four scales.
        image_encoder: Mask crops -> L2-normalised embeddings.
        cache_dir: Cache root; files go to ``<cache_dir>/<settings key>/``. Default:
            ``<dataset root>/.ovseg_cache/preprocess``.
        indices: Views to process (default: all), in the order returned.
        progress: Called as ``progress(done, total)`` at the start and after each view.
        cancel: Checked between images and between encoder batches; when set, raises
            ``Cancelled`` and leaves no partial cache file.
        batch_size: Crops per ``encode_images`` call.
        fuse_global: Fuse each mask feature with the image's global feature (ConceptFusion).
        fusion_temperature: Softmax temperature of that fusion.
        on_view: Called as ``on_view(view index, computed)`` after each view; ``computed`` is
            False when its cache entry was already there.

    Returns:
        A lazy sequence: position ``i`` loads the ``ViewFeatures`` of view ``indices[i]``.
    """
    if batch_size < 1:
        raise UsageError(f"batch_size must be positive, got {batch_size}")
    indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    for i in indices:
        if not 0 <= i < len(dataset):
            raise IndexError(f"view index {i} is out of range for a dataset of {len(dataset)} views")
    cache = feature_cache_for(
        dataset,
        mask_generator,
        image_encoder,
        cache_dir,
        fuse_global=fuse_global,
        fusion_temperature=fusion_temperature,
    )
    total = len(indices)
    paths = []
    if progress is not None:
        progress(0, total)
    for done, i in enumerate(indices):  # progress goes to ``progress`` only (a CLI prints it)
        _raise_if_cancelled(cancel, done, total)
        path, computed = ensure_view_cached(
            cache,
            dataset,
            i,
            mask_generator,
            image_encoder,
            batch_size=batch_size,
            cancel=cancel,
            fuse_global=fuse_global,
            fusion_temperature=fusion_temperature,
        )
        paths.append(path)
        if on_view is not None:
            on_view(i, computed)
        if progress is not None:
            progress(done + 1, total)
    return CachedViewFeatures(paths, indices, cache.dir)


def feature_cache_for(
    dataset: ViewDataset,
    mask_generator: MaskGenerator,
    image_encoder: ImageEncoder,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    fuse_global: bool = False,
    fusion_temperature: float = 1.0,
) -> FeatureCache:
    """The cache folder for these models and settings (every executor derives it the same way).

    ``cache_dir`` defaults to ``<dataset root>/.ovseg_cache/preprocess``.
    """
    settings = {
        "mask_generator": mask_generator.name,
        "image_encoder": image_encoder.name,
        "embed_dim": int(image_encoder.embed_dim),
        "input_size": int(image_encoder.input_size),
        "image_downsample_factor": int(dataset.config.image_downsample_factor),
    }
    if fuse_global:  # only when on, so caches made without fusion keep their key
        settings["concept_fusion_temperature"] = float(fusion_temperature)
    return FeatureCache(Path(cache_dir) if cache_dir is not None else dataset.root / CACHE_SUBDIR, settings)


def ensure_view_cached(
    cache: FeatureCache,
    dataset: ViewDataset,
    index: int,
    mask_generator: MaskGenerator,
    image_encoder: ImageEncoder,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cancel: CancelEvent | None = None,
    fuse_global: bool = False,
    fusion_temperature: float = 1.0,
) -> tuple[Path, bool]:
    """Compute and atomically store view ``index``'s entry unless a valid one is already cached.

    Returns:
        The entry's path, and whether it was computed now (False: it was already there).
    """
    view = dataset[index]
    path = cache.path_for(view.name)
    sha = file_sha256(view.image_path)
    if cache.read(path, sha, (view.camera.height, view.camera.width, 3)) is not None:
        return path, False
    vf = compute_view_features(
        dataset.load_image(index),
        mask_generator,
        image_encoder,
        batch_size=batch_size,
        cancel=cancel,
        fuse_global=fuse_global,
        fusion_temperature=fusion_temperature,
    )
    cache.write(path, vf, sha)
    return path, True


def compute_view_features(
    image: np.ndarray,
    mask_generator: MaskGenerator,
    image_encoder: ImageEncoder,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cancel: CancelEvent | None = None,
    fuse_global: bool = False,
    fusion_temperature: float = 1.0,
) -> ViewFeatures:
    """One image -> its masks, their CLIP features and seg maps (no caching); with ``fuse_global``
    the features are ConceptFusion's local-global fusions.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be [H, W, 3] uint8, got {list(image.shape)} {image.dtype}")
    height, width = image.shape[:2]
    masks = _checked_masks(mask_generator.generate(image), height, width, mask_generator.name)
    dim = int(image_encoder.embed_dim)
    chunks = []
    for scale in SCALES:
        ms = masks[scale]
        for start in range(0, len(ms), batch_size):
            _raise_if_cancelled(cancel)
            crops = mask_crops(image, _mask_slice(ms, start, start + batch_size), image_encoder.input_size)
            with torch.inference_mode():
                emb = image_encoder.encode_images(crops)
            if tuple(emb.shape) != (crops.shape[0], dim):
                raise ValueError(
                    f"image encoder {image_encoder.name!r} returned {list(emb.shape)} for {crops.shape[0]} crops, "
                    f"expected [{crops.shape[0]}, {dim}]"
                )
            chunks.append(emb.detach().to("cpu", torch.float32))
    features = torch.cat(chunks) if chunks else torch.zeros((0, dim))
    features = F.normalize(features, dim=-1)  # the encoder normalises; this guards float16 round-off
    if fuse_global:
        from ovseg_core.preprocess.concept_fusion import fuse_local_global, global_feature

        features = fuse_local_global(features, global_feature(image, image_encoder), fusion_temperature)
    seg_maps, lengths = build_seg_maps(masks, height, width)
    return ViewFeatures(features.numpy().astype(np.float32), seg_maps, lengths, masks)


def _checked_masks(masks: Any, height: int, width: int, generator: str) -> dict[str, MaskSet]:
    """The generator's output with canonical dtypes, after checking it covers every scale."""
    if not isinstance(masks, dict) or any(s not in masks for s in SCALES):
        got = sorted(masks) if isinstance(masks, dict) else type(masks).__name__
        raise ValueError(f"mask generator {generator!r} must return masks for scales {list(SCALES)}, got {got}")
    out = {}
    for scale in SCALES:
        ms = masks[scale]
        segs = np.asarray(ms.segmentations).astype(bool, copy=False)
        m = len(segs)
        if segs.ndim != 3 or segs.shape[1:] != (height, width):
            raise ValueError(
                f"mask generator {generator!r}: {scale} masks are {list(segs.shape)}, expected [M, {height}, {width}]"
            )
        fields = {
            "bboxes": np.asarray(ms.bboxes, dtype=np.float32).reshape(-1, 4) if m else np.zeros((0, 4), np.float32),
            "areas": np.asarray(ms.areas, dtype=np.int64).reshape(-1),
            "predicted_ious": np.asarray(ms.predicted_ious, dtype=np.float32).reshape(-1),
            "stability_scores": np.asarray(ms.stability_scores, dtype=np.float32).reshape(-1),
        }
        for name, arr in fields.items():
            if arr.shape[0] != m:
                raise ValueError(f"mask generator {generator!r}: {scale} has {m} masks but {arr.shape[0]} {name}")
        out[scale] = MaskSet(segmentations=segs, **fields)
    return out


def _mask_slice(ms: MaskSet, start: int, stop: int) -> MaskSet:
    return MaskSet(
        segmentations=ms.segmentations[start:stop],
        bboxes=ms.bboxes[start:stop],
        areas=ms.areas[start:stop],
        predicted_ious=ms.predicted_ious[start:stop],
        stability_scores=ms.stability_scores[start:stop],
    )


def _raise_if_cancelled(cancel: CancelEvent | None, done: int | None = None, total: int | None = None) -> None:
    if cancel is not None and cancel.is_set():
        where = f" after {done} of {total} views" if done is not None else ""
        raise Cancelled(f"preprocessing cancelled{where}")
