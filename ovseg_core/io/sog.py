"""PlayCanvas SOG v2 (what SuperSplat publishes): ``meta.json`` plus lossless WebP images, one texel per
Gaussian, bundled as a zip (``.sog``) or side by side.

- ``means``: two images, the low and high bytes of 16-bit positions quantised between ``mins`` and
  ``maxs`` of the log-encoded coordinates ``sign(x) * ln(|x| + 1)``.
- ``quats``: the three smallest components of the unit quaternion (w, x, y, z) as ``(q * sqrt2 + 1) / 2``
  bytes, the alpha holding 252 + the index of the omitted (largest, made positive) component.
- ``scales``: per-axis indices into a 256-entry ``codebook`` of log-scales.
- ``sh0``: per-channel indices into a codebook of DC coefficients, alpha = sigmoid(opacity) * 255.
- ``shN`` (optional): a 16-bit palette label per Gaussian (``shN_labels``), a palette image of
  ``64 * coeffs`` columns (``shN_centroids``) whose bytes index a codebook of SH coefficients.

Decoding follows PlayCanvas splat-transform's ``read-sog.ts``. Every size in ``meta.json`` is checked
against the images' headers (and the WebP limit) before any image is decoded.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from typing import Any

import numpy as np
import torch

from ovseg_core.errors import SceneFormatError
from ovseg_core.io.finite_rows import finite_rows
from ovseg_core.io.ply import normalize_quats_np
from ovseg_core.io.sog_files import looks_like_sog_meta, open_sog
from ovseg_core.scene import GaussianScene

MAX_WEBP_SIDE = 16383
"""WebP's largest width or height."""
MAX_COUNT = 1 << 26
"""The most Gaussians ovseg reads from one SOG (67M; WebP allows 268M): each image then decodes to at most
256 MiB, and PlayCanvas itself streams scenes beyond a few million as LOD chunks instead."""
PADDING_TEXELS = 1 << 16
"""Per-Gaussian images may have this many texels beyond twice the count (writers pad to multiples of 4)."""
SH_COEFFS = {1: 3, 2: 8, 3: 15}
"""SH bands -> coefficients per channel."""
MAX_PALETTE = 1 << 16
"""shN labels are 16-bit."""
_QUAT_SLOTS = ((1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2))
"""For each omitted component of (w, x, y, z), where the three stored ones go."""


def read_sog(path: str | os.PathLike[str]) -> GaussianScene:
    """Read a SOG v2 scene: a ``.sog`` zip, an unbundled ``meta.json``, or a folder holding one.

    Raises:
        SceneFormatError: naming the file: not SOG v2, counts or image sizes that disagree, a missing,
            oversized or non-lossless-WebP image, a hostile zip (entry names, sizes), a bad codebook.
    """
    files = open_sog(path)
    try:
        where = files.path
        meta = files.meta
        spec = _check_meta(meta, where)
        images = {}
        for key, name, kind in spec["images"]:
            images[key] = _decode_webp(files.read(name), name, kind, spec, where)
    finally:
        files.close()
    with np.errstate(all="ignore"):  # huge mins/maxs overflow exp(): those rows are dropped as non-finite
        columns = _decode(spec, images, where)
    n = spec["count"]
    keep = finite_rows(columns, where, n)
    if keep is not None:
        columns = {k: v[keep] for k, v in columns.items()}
    columns["quats"] = normalize_quats_np(columns["quats"])
    return GaussianScene(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in columns.items()})


def _check_meta(meta: dict[str, Any], where: str) -> dict[str, Any]:
    if "version" not in meta:
        raise SceneFormatError(f"{where}: a SOG v1 meta.json (no 'version'); only SOG v2 is supported")
    if meta["version"] != 2 or isinstance(meta["version"], bool):
        raise SceneFormatError(f"{where}: SOG version {repr(meta['version'])[:20]} is not supported (only 2)")
    if not looks_like_sog_meta(meta):
        raise SceneFormatError(f"{where}: meta.json lacks the SOG sections means, quats, scales and sh0")
    count = meta.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise SceneFormatError(f"{where}: SOG count {repr(count)[:30]} is not a number of Gaussians in 1..{MAX_COUNT}")
    means = meta["means"]
    bounds = [_numbers(means.get(key), where, f"means.{key}", exact=3) for key in ("mins", "maxs")]
    low, high = _files(means, 2, where, "means")
    images = [
        ("means_l", low, "texel"),
        ("means_u", high, "texel"),
        ("quats", _files(meta["quats"], 1, where, "quats")[0], "texel"),
        ("scales", _files(meta["scales"], 1, where, "scales")[0], "texel"),
        ("sh0", _files(meta["sh0"], 1, where, "sh0")[0], "texel"),
    ]
    spec: dict[str, Any] = {
        "count": count,
        "mins": bounds[0],
        "maxs": bounds[1],
        "scales": _numbers(meta["scales"].get("codebook"), where, "scales.codebook"),
        "sh0": _numbers(meta["sh0"].get("codebook"), where, "sh0.codebook"),
        "coeffs": 0,
    }
    shn = meta.get("shN")
    if shn is not None:
        if not isinstance(shn, dict):
            raise SceneFormatError(f"{where}: SOG shN is not an object")
        bands, palette = shn.get("bands"), shn.get("count")
        if bands not in SH_COEFFS or isinstance(bands, bool):
            raise SceneFormatError(f"{where}: SOG shN.bands {repr(bands)[:20]} is not 1, 2 or 3")
        if not isinstance(palette, int) or isinstance(palette, bool) or not 1 <= palette <= MAX_PALETTE:
            raise SceneFormatError(f"{where}: SOG shN.count {repr(palette)[:20]} is not a palette size 1..65536")
        names = _files(shn, 2, where, "shN")
        images += [("shN_centroids", names[0], "palette"), ("shN_labels", names[1], "texel")]
        spec.update(coeffs=SH_COEFFS[bands], palette=palette, shN=_numbers(shn.get("codebook"), where, "shN.codebook"))
    spec["images"] = images
    return spec


def _numbers(value: Any, where: str, what: str, exact: int | None = None) -> np.ndarray:
    ok = isinstance(value, list) and (len(value) == exact if exact else 1 <= len(value) <= 256)
    if ok:
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        size = f"{exact}" if exact else "1-256"
        raise SceneFormatError(f"{where}: SOG {what} is not a list of {size} finite numbers")
    return np.asarray(value, np.float64)


def _files(section: dict[str, Any], count: int, where: str, what: str) -> list[str]:
    names = section.get("files")
    if not isinstance(names, list) or len(names) != count or not all(isinstance(n, str) for n in names):
        raise SceneFormatError(f"{where}: SOG {what}.files must list {count} image file name(s)")
    return names


def _decode_webp(data: bytes, name: str, kind: str, spec: dict[str, Any], where: str) -> np.ndarray:
    """The image's texels ``[H * W, 4]`` uint8 (RGBA), after its header passed the size checks."""
    from PIL import Image

    if len(data) < 21 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise SceneFormatError(f"{where}: SOG image {name!r} is not a WebP file")
    if not _lossless(data):
        raise SceneFormatError(f"{where}: SOG image {name!r} is a lossy WebP; SOG images must be lossless")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["WEBP"])
            width, height = image.size
            _check_size(width, height, name, kind, spec, where)
            rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    except SceneFormatError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, Warning) as e:
        raise SceneFormatError(f"{where}: SOG image {name!r} cannot be decoded ({str(e)[:120]})") from None
    return rgba.reshape(height * width, 4)


def _lossless(data: bytes) -> bool:
    """Whether the WebP's image chunk is VP8L (lossless); lossy VP8 would scramble codebook indices."""
    offset = 12
    while offset + 8 <= len(data) and offset < 4096:
        tag = data[offset : offset + 4]
        if tag in (b"VP8L", b"VP8 "):
            return tag == b"VP8L"
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        offset += 8 + size + (size & 1)
    return False


def _check_size(width: int, height: int, name: str, kind: str, spec: dict[str, Any], where: str) -> None:
    if not (1 <= width <= MAX_WEBP_SIDE and 1 <= height <= MAX_WEBP_SIDE):
        raise SceneFormatError(f"{where}: SOG image {name!r} is {width}x{height}, beyond WebP's limits")
    count = spec["count"]
    if kind == "texel":
        if width * height < count:
            raise SceneFormatError(
                f"{where}: SOG image {name!r} has {width}x{height} texels, fewer than the {count} Gaussians"
            )
        if width * height > 2 * count + PADDING_TEXELS:
            raise SceneFormatError(
                f"{where}: SOG image {name!r} has {width}x{height} texels, far more than the {count} Gaussians"
            )
    else:
        coeffs = spec["coeffs"]
        if width != 64 * coeffs or height > math.ceil(spec["palette"] / 64):
            raise SceneFormatError(
                f"{where}: SOG palette image {name!r} is {width}x{height}; {spec['palette']} entries of "
                f"{coeffs} coefficients need {64 * coeffs} columns and at most {math.ceil(spec['palette'] / 64)} rows"
            )


def _lookup(codebook: np.ndarray, index: np.ndarray, what: str, where: str) -> np.ndarray:
    if index.size and int(index.max()) >= len(codebook):
        raise SceneFormatError(
            f"{where}: SOG {what} indexes entry {int(index.max())} of a {len(codebook)}-entry codebook"
        )
    return codebook[index]


def _decode(spec: dict[str, Any], images: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    n = spec["count"]
    lo = images["means_l"][:n, :3].astype(np.float64)
    hi = images["means_u"][:n, :3].astype(np.float64)
    mins, maxs = spec["mins"], spec["maxs"]
    span = np.where(maxs - mins != 0, maxs - mins, 1.0)  # as splat-transform: a flat axis keeps its min
    encoded = mins + span * ((lo + 256.0 * hi) / 65535.0)
    means = np.sign(encoded) * np.expm1(np.abs(encoded))

    packed = images["quats"][:n]
    tag = packed[:, 3].astype(np.int64)
    stored = (packed[:, :3].astype(np.float64) / 255.0 * 2.0 - 1.0) / math.sqrt(2.0)
    largest = np.sqrt(np.clip(1.0 - (stored**2).sum(axis=1), 0.0, None))
    quats = np.zeros((n, 4))
    quats[:, 0] = 1.0  # an invalid tag (not 252..255) gives the identity, as in splat-transform
    for omitted, slots in enumerate(_QUAT_SLOTS):
        rows = tag == 252 + omitted
        quats[rows] = 0.0
        quats[np.ix_(rows, slots)] = stored[rows]
        quats[rows, omitted] = largest[rows]

    scale_idx = images["scales"][:n, :3]
    log_scales = _lookup(spec["scales"], scale_idx, "scales image", where)
    colour = images["sh0"][:n]
    sh0 = _lookup(spec["sh0"], colour[:, :3], "sh0 image", where)[:, None, :]
    alpha = np.clip(colour[:, 3].astype(np.float64) / 255.0, 1e-6, 1 - 1e-6)
    logit = np.log(alpha / (1.0 - alpha))

    coeffs = spec["coeffs"]
    shN = np.zeros((n, coeffs, 3))
    if coeffs:
        labels = images["shN_labels"][:n, :2].astype(np.int64)
        label = labels[:, 0] | (labels[:, 1] << 8)
        palette = images["shN_centroids"]  # [rows * 64 * coeffs, 4]
        rows = palette.shape[0] // (64 * coeffs)
        valid = label < spec["palette"]
        row, col = label // 64, (label % 64) * coeffs
        texel = row[:, None] * (64 * coeffs) + col[:, None] + np.arange(coeffs)  # [N, coeffs]
        inside = (row < rows)[:, None] & valid[:, None]
        index = np.where(inside[..., None], palette[np.where(inside, texel, 0), :3], 0)  # past the palette: entry 0
        shN = _lookup(spec["shN"], index, "shN palette", where)
        shN[~valid] = 0.0  # a label beyond the palette has no higher bands, as in splat-transform
    return {
        "means": means.astype(np.float32),
        "quats": quats.astype(np.float32),
        "log_scales": log_scales.astype(np.float32),
        "logit_opacities": logit.astype(np.float32),
        "sh0": sh0.astype(np.float32),
        "shN": shN.astype(np.float32),
    }
