"""Test-side SOG v2 files: raw texel images + meta.json written as lossless WebP (Pillow), unbundled or
zipped, and a simple encoder from a scene (codebooks from quantiles, one SH palette entry per Gaussian)."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from ovseg_core.scene import GaussianScene

SQRT2 = math.sqrt(2.0)


def webp_bytes(texels: np.ndarray, *, lossless: bool = True) -> bytes:
    """``texels`` ``[H, W, 4]`` uint8 as a WebP (lossless keeps every byte, alpha-0 texels included)."""
    from PIL import Image

    buffer = io.BytesIO()
    options = {"lossless": True, "exact": True} if lossless else {"quality": 50}
    Image.fromarray(np.ascontiguousarray(texels), "RGBA").save(buffer, "WEBP", **options)
    return buffer.getvalue()


def texel_shape(count: int) -> tuple[int, int]:
    """splat-transform's image size for ``count`` Gaussians: (height, width), multiples of 4."""
    width = math.ceil(math.sqrt(count) / 4) * 4
    return math.ceil(count / width / 4) * 4, width


def to_texels(rows: np.ndarray, count: int) -> np.ndarray:
    """``rows`` ``[count, 4]`` uint8 into a zero-padded ``[H, W, 4]`` image."""
    h, w = texel_shape(count)
    out = np.zeros((h * w, 4), np.uint8)
    out[:count] = rows
    return out.reshape(h, w, 4)


def save_sog(dest: Path, meta: dict, files: dict[str, bytes]) -> Path:
    """A ``.sog`` zip when ``dest`` ends in .sog, else ``dest`` is a folder receiving meta.json and the
    files; returns the path to load."""
    if dest.suffix == ".sog":
        with zipfile.ZipFile(dest, "w") as z:
            z.writestr("meta.json", json.dumps(meta))
            for name, data in files.items():
                z.writestr(name, data)
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "meta.json").write_text(json.dumps(meta))
    for name, data in files.items():
        (dest / name).write_bytes(data)
    return dest / "meta.json"


def _codebook(values: np.ndarray) -> tuple[list[float], np.ndarray]:
    """256 quantiles of ``values`` and each value's nearest entry index (same shape, uint8)."""
    book = np.quantile(values.ravel(), np.linspace(0, 1, 256)).astype(np.float32).astype(np.float64)
    idx = np.abs(values[..., None] - book).argmin(axis=-1).astype(np.uint8)
    return book.tolist(), idx


def encode_scene(scene: GaussianScene) -> tuple[dict, dict[str, bytes]]:
    """``(meta, files)`` of a SOG holding ``scene`` (degree <= 3; at most 65536 Gaussians)."""
    n = scene.num_gaussians
    means = scene.means.double().numpy()
    encoded = np.sign(means) * np.log1p(np.abs(means))
    mins, maxs = encoded.min(0), encoded.max(0)
    q16 = np.round((encoded - mins) / np.where(maxs > mins, maxs - mins, 1) * 65535).astype(np.int64)
    alpha255 = np.full((n, 1), 255, np.uint8)
    low = np.concatenate([(q16 & 255).astype(np.uint8), alpha255], 1)
    high = np.concatenate([(q16 >> 8).astype(np.uint8), alpha255], 1)

    q = scene.quats.double().numpy()
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    omitted = np.abs(q).argmax(1)
    q *= np.where(q[np.arange(n), omitted] < 0, -1, 1)[:, None]
    kept = np.stack([np.delete(row, k) for row, k in zip(q, omitted, strict=True)])
    quats = np.concatenate([np.round((kept * SQRT2 * 0.5 + 0.5) * 255), (252 + omitted)[:, None]], 1).astype(np.uint8)

    scale_book, scale_idx = _codebook(scene.log_scales.double().numpy())
    dc_book, dc_idx = _codebook(scene.sh0[:, 0, :].double().numpy())
    opacity = np.clip(np.round(scene.opacities.double().numpy() * 255), 0, 255).astype(np.uint8)
    meta = {
        "version": 2,
        "count": n,
        "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scale_book, "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": dc_book, "files": ["sh0.webp"]},
    }
    files = {
        "means_l.webp": webp_bytes(to_texels(low, n)),
        "means_u.webp": webp_bytes(to_texels(high, n)),
        "quats.webp": webp_bytes(to_texels(quats, n)),
        "scales.webp": webp_bytes(to_texels(np.concatenate([scale_idx, alpha255], 1), n)),
        "sh0.webp": webp_bytes(to_texels(np.concatenate([dc_idx, opacity[:, None]], 1), n)),
    }
    coeffs = scene.shN.shape[1]
    if coeffs:
        sh_book, sh_idx = _codebook(scene.shN.double().numpy())  # [N, coeffs, 3]
        rows = math.ceil(n / 64)
        palette = np.zeros((rows * 64, coeffs, 4), np.uint8)
        palette[:n, :, :3], palette[:, :, 3] = sh_idx, 255
        labels = np.stack([np.arange(n) & 255, np.arange(n) >> 8, np.zeros(n), np.full(n, 255)], 1).astype(np.uint8)
        meta["shN"] = {
            "count": n,
            "bands": {3: 1, 8: 2, 15: 3}[coeffs],
            "codebook": sh_book,
            "files": ["shN_centroids.webp", "shN_labels.webp"],
        }
        files["shN_centroids.webp"] = webp_bytes(palette.reshape(rows, 64 * coeffs, 4))
        files["shN_labels.webp"] = webp_bytes(to_texels(labels, n))
    return meta, files
