"""On-disk cache of ``ViewFeatures``: one compressed ``.npz`` per image.

Layout: ``<root>/<key>/<image name>.npz`` plus ``<root>/<key>/settings.json``, where ``key``
hashes every setting that changes the result (models, embedding size, crop size, image
downsampling, format version). Each file also records the source image's sha256 and the shape
the image was processed at, so an edited photo is recomputed. Files are written atomically
(a reader sees the old file or the new one), so an interrupted run leaves no partial file.

Keys in a file: ``features`` [N_total, D] float32, ``seg_maps`` [4, H, W] int32, ``lengths``
[4] int64, per scale ``{scale}_segmentations_packbits`` [M, H, ceil(W/8)] uint8 (bool masks
bit-packed along W), ``{scale}_bboxes`` [M, 4] float32 XYWH, ``{scale}_areas`` [M] int64,
``{scale}_predicted_ious`` [M] float32, ``{scale}_stability_scores`` [M] float32, and
``format_version``, ``image_sha256``, ``image_shape`` [3].
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from ovseg_core.errors import OvsegError
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.models.protocols import SCALES, MaskSet
from ovseg_core.preprocess.view_features import ViewFeatures

CACHE_FORMAT_VERSION = 1

_log = logging.getLogger(__name__)
_MASK_FIELDS = ("bboxes", "areas", "predicted_ious", "stability_scores")
_MASK_DTYPES = {"bboxes": np.float32, "areas": np.int64, "predicted_ious": np.float32, "stability_scores": np.float32}


class CacheFileError(OvsegError, ValueError):
    """A cache file is unreadable or does not hold what the format requires."""


def cache_key(settings: dict[str, Any]) -> str:
    """16 hex digits identifying ``settings`` (a JSON-serialisable dict)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FeatureCache:
    """One settings key's folder of per-image feature files."""

    def __init__(self, root: str | os.PathLike[str], settings: dict[str, Any]) -> None:
        self.settings = {**settings, "format_version": CACHE_FORMAT_VERSION}
        self.key = cache_key(self.settings)
        self.dir = Path(root) / self.key

    def path_for(self, image_name: str) -> Path:
        """The file for an image; names with odd characters get a hash so they stay distinct."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", image_name)
        if safe != image_name or safe.startswith("."):
            safe = f"{safe}-{hashlib.sha1(image_name.encode()).hexdigest()[:8]}"
        return self.dir / f"{safe}.npz"

    def read(self, path: Path, image_sha256: str, image_shape: tuple[int, int, int]) -> ViewFeatures | None:
        """The cached features if ``path`` holds a valid file for this exact image, else None.

        A corrupt file (unreadable, missing keys, wrong shapes) gives a warning; a stale one
        (other image contents or size) is only logged. Either way the caller recomputes.
        """
        if not path.is_file():
            return None
        try:
            # open the file ourselves: np.load leaks its handle when the zip is truncated
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
                version = int(_get(npz, "format_version", path))
                if version != CACHE_FORMAT_VERSION:
                    _log.info("%s: cache format %d, expected %d; recomputing", path, version, CACHE_FORMAT_VERSION)
                    return None
                if str(_get(npz, "image_sha256", path)) != image_sha256:
                    _log.info("%s: the source image changed since it was cached; recomputing", path)
                    return None
                shape = tuple(int(v) for v in _get(npz, "image_shape", path))
                if shape != tuple(image_shape):
                    _log.info("%s: cached for a %s image, now %s; recomputing", path, shape, tuple(image_shape))
                    return None
                vf = _view_features_from_npz(npz, path, masks="check")
            if vf.seg_maps.shape[1:] != tuple(image_shape[:2]):
                raise CacheFileError(f"{path}: seg_maps are {list(vf.seg_maps.shape)} for a {list(image_shape)} image")
            if vf.embed_dim != self.settings.get("embed_dim", vf.embed_dim):
                raise CacheFileError(f"{path}: features are {vf.embed_dim}-d, expected {self.settings['embed_dim']}")
            return vf
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            warnings.warn(f"preprocessing cache file {path} is corrupt ({e}); recomputing it", stacklevel=2)
            return None

    def read_lengths(self, path: Path, image_sha256: str, image_shape: tuple[int, int, int]) -> np.ndarray | None:
        """``[4]`` masks per level of a valid entry for this image, reading only its small keys (no
        features, seg maps or masks); None when absent, stale or unreadable (preprocessing then
        recomputes it)."""
        if not path.is_file():
            return None
        try:
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
                if int(npz["format_version"]) != CACHE_FORMAT_VERSION or str(npz["image_sha256"]) != image_sha256:
                    return None
                if tuple(int(v) for v in npz["image_shape"]) != tuple(image_shape):
                    return None
                lengths = np.asarray(npz["lengths"], np.int64)
        except Exception:  # noqa: BLE001 - a corrupt entry is recomputed by preprocessing
            return None
        return lengths if lengths.shape == (len(SCALES),) else None

    def write(self, path: Path, features: ViewFeatures, image_sha256: str) -> None:
        """Store ``features`` (with its masks) atomically; also writes ``settings.json`` once."""
        try:
            settings_file = self.dir / "settings.json"
            if not settings_file.is_file():
                atomic_write_bytes(settings_file, json.dumps(self.settings, indent=2, sort_keys=True).encode())
            atomic_write_bytes(path, view_features_to_npz_bytes(features, image_sha256))
        except PermissionError as e:
            raise PermissionError(
                f"cannot write the preprocessing cache in {self.dir}: {e}; pass cache_dir= to put it elsewhere"
            ) from e


def view_features_to_npz_bytes(vf: ViewFeatures, image_sha256: str) -> bytes:
    """The cache file's bytes for ``vf`` (whose masks must be present)."""
    if vf.masks is None:
        raise ValueError("cannot cache ViewFeatures without their masks")
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(CACHE_FORMAT_VERSION, dtype=np.int64),
        "image_sha256": np.array(image_sha256),
        "image_shape": np.array([vf.height, vf.width, 3], dtype=np.int64),
        "features": vf.features,
        "seg_maps": vf.seg_maps,
        "lengths": vf.lengths,
    }
    for scale in SCALES:
        ms = vf.masks[scale]
        arrays[f"{scale}_segmentations_packbits"] = np.packbits(np.asarray(ms.segmentations, dtype=bool), axis=-1)
        for field in _MASK_FIELDS:
            arrays[f"{scale}_{field}"] = np.asarray(getattr(ms, field), dtype=_MASK_DTYPES[field])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def load_view_features(path: str | os.PathLike[str], with_masks: bool = False) -> ViewFeatures:
    """Read a cache file; ``with_masks`` also unpacks the per-scale masks.

    Raises:
        CacheFileError: the file is unreadable or malformed.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            return _view_features_from_npz(npz, path, masks="load" if with_masks else "skip")
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise CacheFileError(f"{path}: cannot read preprocessing cache file: {e}") from e
    except ValueError as e:
        raise CacheFileError(f"{path}: {e}") from e


class CachedViewFeatures(Sequence[ViewFeatures]):
    """Preprocessed views, read from their cache files on access (without masks by default).

    Position ``i`` holds the features of dataset view ``view_indices[i]``.
    """

    def __init__(self, paths: Sequence[Path], view_indices: Sequence[int], cache_dir: Path) -> None:
        if len(paths) != len(view_indices):
            raise ValueError("one cache file per view index")
        self.paths: tuple[Path, ...] = tuple(paths)
        self.view_indices: tuple[int, ...] = tuple(int(i) for i in view_indices)
        self.cache_dir = cache_dir

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, i: int) -> ViewFeatures: ...
    @overload
    def __getitem__(self, i: slice) -> list[ViewFeatures]: ...
    def __getitem__(self, i: int | slice) -> ViewFeatures | list[ViewFeatures]:
        if isinstance(i, slice):
            return [self.load(j) for j in range(*i.indices(len(self)))]
        return self.load(i)

    def load(self, i: int, with_masks: bool = False) -> ViewFeatures:
        return load_view_features(self.paths[i], with_masks=with_masks)


def _view_features_from_npz(npz: Any, path: Path, masks: str) -> ViewFeatures:
    """``masks``: "skip" them, "check" their stored shapes, or "load" (unpack) them."""
    features = _get(npz, "features", path)
    seg_maps = _get(npz, "seg_maps", path)
    lengths = _get(npz, "lengths", path)
    loaded: dict[str, MaskSet] | None = {} if masks == "load" else None
    if masks != "skip":
        if seg_maps.ndim != 3:
            raise CacheFileError(f"{path}: seg_maps must be [4, H, W], got {list(seg_maps.shape)}")
        height, width = seg_maps.shape[1:]
        for level, scale in enumerate(SCALES):
            count = int(lengths[level]) if lengths.shape == (len(SCALES),) else -1
            packed = _get(npz, f"{scale}_segmentations_packbits", path)
            expected = (count, height, (width + 7) // 8)
            if packed.shape != expected or packed.dtype != np.uint8:
                raise CacheFileError(
                    f"{path}: {scale}_segmentations_packbits is {list(packed.shape)}, expected {list(expected)}"
                )
            fields = {f: _get(npz, f"{scale}_{f}", path) for f in _MASK_FIELDS}
            for f, arr in fields.items():
                want = (count, 4) if f == "bboxes" else (count,)
                if arr.shape != want:
                    raise CacheFileError(f"{path}: {scale}_{f} is {list(arr.shape)}, expected {list(want)}")
            if loaded is not None:
                segs = np.unpackbits(packed, axis=-1, count=width).astype(bool)
                loaded[scale] = MaskSet(segmentations=segs, **fields)
    return ViewFeatures(features, seg_maps, lengths, loaded)


def _get(npz: Any, key: str, path: Path) -> np.ndarray:
    if key not in npz.files:
        raise CacheFileError(f"{path}: missing {key!r}")
    return npz[key]
