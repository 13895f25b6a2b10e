"""Seeded hostile scene files for the reader fuzz (``ovseg-bench robustness`` and the test suite).

Seeds are small generated files of every flavour ovseg reads (INRIA binary both endians and ASCII,
fVDB with tensor metadata, SuperSplat compressed, ``.splat``, a bundled SOG, ``.spz`` versions 2-4, a
gsplat checkpoint, ``.ksplat`` levels 0 and 1) plus the real files in
``../shared/data`` when present. Each case applies one to three mutations drawn from a seeded
generator: bit flips, truncation, junk, rewritten header numbers (huge, negative, non-numeric),
deleted/duplicated/retyped header lines, list properties, comment bombs, NaN/Inf patches in the
data and mangled fVDB metadata. Every case is reproducible from ``(seed, index)``.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import zstandard
from plyfile import PlyData, PlyElement

from benchmarks.ksplat_builder import ksplat_bytes
from ovseg_core.data.normalization import NORMALIZATION_METADATA_KEY
from ovseg_core.io.ply import write_ply
from ovseg_core.io.splat_file import write_splat
from ovseg_core.io.spz_codec import encode_columns
from ovseg_core.io.spz_file import MAGIC, write_spz
from ovseg_core.scene import GaussianScene
from ovseg_core.synthetic import random_scene

SHARED_SEEDS = ("kacytran_try_inria/point_cloud_iter7000.ply", "kacytran_try_inria/model_1.splat")
_HUGE_COUNTS = (b"100000000", b"4700000", b"18446744073709551616", b"2147483648", b"-1", b"1e9", b"abc", b"")
_FLOAT_PATTERNS = [np.float32(v).tobytes() for v in (np.nan, np.inf, -np.inf, 3.0e38, -3.0e38, 1e30)]


def seed_files(shared_data: Path | None = None) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the unmutated seeds: generated ones, then the shared real files found."""
    scene = random_scene(300, sh_degree=3, seed=11)
    scene.extras = {"nx": np.zeros(300, np.float32), "semantic_id": np.arange(300, dtype=np.int32)}
    small = random_scene(40, sh_degree=1, seed=12)
    fvdb = random_scene(64, sh_degree=2, seed=13)
    fvdb.metadata = {
        NORMALIZATION_METADATA_KEY: np.eye(4, dtype=np.float32),
        "camera_to_world_matrices": np.tile(np.eye(4, dtype=np.float32), (3, 1, 1)),
        "image_sizes": np.array([[64, 48]] * 3, dtype=np.int32),
        "scene_name": "fuzz",
        "num_training_steps": 7000,
        "scale": 1.5,
    }
    seeds = [
        ("inria_le.ply", write_ply(scene)),
        ("inria_be.ply", write_ply(scene, byte_order=">")),
        ("inria_ascii.ply", write_ply(small, text=True)),
        ("fvdb.ply", write_ply(fvdb, flavour="fvdb")),
        ("compressed.ply", compressed_ply_bytes(600, seed=14)),
        ("scene.splat", write_splat(random_scene(200, seed=15))),
        ("scene.sog", sog_bytes(*sog_parts(300, seed=20))),
        ("v2.spz", write_spz(random_scene(150, sh_degree=1, seed=20), version=2)),
        ("v3.spz", write_spz(random_scene(150, sh_degree=3, seed=21))),
        ("v4.spz", spz_v4_bytes(random_scene(150, sh_degree=2, seed=22))),
        ("ckpt.pt", gsplat_checkpoint_bytes(random_scene(100, sh_degree=1, seed=23))),
        ("l0.ksplat", ksplat_bytes(random_scene(100, sh_degree=1, seed=24))),
        ("l1.ksplat", ksplat_bytes(random_scene(150, sh_degree=2, seed=25), level=1, section_size=60, bucket_size=16)),
    ]
    for rel in SHARED_SEEDS if shared_data is not None else ():
        path = shared_data / rel
        if path.is_file():
            seeds.append((path.name, path.read_bytes()))
    return seeds


def crafted_cases() -> list[tuple[str, str, bytes]]:
    """``(name, summary, bytes)`` of hand-made files that once escaped as non-format errors: INRIA
    properties stored as integers, a fourth colour channel, a non-canonical SH name and ``.splat``
    centres at the edge of float32 (no camera can frame them)."""
    scene = random_scene(60, sh_degree=1, seed=16)
    table = PlyData.read(io.BytesIO(write_ply(scene)))["vertex"].data
    out = []
    for prop in ("x", "opacity", "f_dc_0", "f_rest_2"):
        retyped = np.empty(len(table), [(n, "u1" if n == prop else table.dtype[n].str) for n in table.dtype.names])
        for n in table.dtype.names:
            retyped[n] = np.clip(table[n] * 50, 0, 255) if n == prop else table[n]
        out.append((f"crafted_uchar_{prop}.ply", f"uchar {prop}", _ply_of(retyped)))
    flat = random_scene(60, sh_degree=0, seed=17)
    flat_table = PlyData.read(io.BytesIO(write_ply(flat)))["vertex"].data
    four = np.empty(len(flat_table), flat_table.dtype.descr + [("f_dc_3", "<f4")])
    for n in flat_table.dtype.names:
        four[n] = flat_table[n]
    four["f_dc_3"] = flat_table["f_dc_0"]
    out.append(("crafted_f_dc_3.ply", "fourth colour channel", _ply_of(four)))
    renamed = table.copy()
    renamed.dtype.names = tuple("f_dc_00" if n == "f_dc_0" else n for n in table.dtype.names)
    out.append(("crafted_f_dc_00.ply", "f_dc_0 renamed f_dc_00", _ply_of(renamed)))
    records = np.frombuffer(write_splat(random_scene(60, seed=18)), dtype=np.uint8).reshape(-1, 32).copy()
    records[:, :12] = np.frombuffer(np.full(3, 3.4e38, np.float32).tobytes(), np.uint8)
    out.append(("crafted_far.splat", "every centre at 3.4e38", records.tobytes()))
    g = np.random.default_rng(19)
    records[:, :12] = g.uniform(-3e38, 3e38, (len(records), 3)).astype(np.float32).view(np.uint8)
    out.append(("crafted_spread.splat", "centres spread over +-3e38", records.tobytes()))
    meta, images = sog_parts(40, seed=21)
    out.append(("crafted_count.sog", "SOG count 2^31", sog_bytes({**meta, "count": 2**31}, images)))
    out.append(("crafted_texels.sog", "SOG count beyond its images", sog_bytes({**meta, "count": 10**7}, images)))
    out.append(("crafted_traversal.sog", "zip entry ../x", sog_bytes(meta, {**images, "../x.webp": b"x"})))
    bomb = sog_bytes(meta, {**images, "sh0.webp": b"\0" * (16 << 20)})
    out.append(("crafted_bomb.sog", "16 MiB of zeros in a SOG entry", bomb))
    out.append(("crafted_png.sog", "SOG image not a WebP", sog_bytes(meta, {**images, "quats.webp": b"\x89PNG\r\n"})))
    return out


def _ply_of(table: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(table, "vertex")]).write(buffer)
    return buffer.getvalue()


def compressed_ply_bytes(n: int, seed: int) -> bytes:
    """A SuperSplat compressed PLY of ``n`` Gaussians with random packed values and an SH-degree-1 ``sh``."""
    g = np.random.default_rng(seed)
    chunks = (n + 255) // 256
    names = [f"{m}_{a}" for m in ("min", "max") for a in "xyz"]
    names += [f"{m}_scale_{a}" for m in ("min", "max") for a in "xyz"]
    names += [f"{m}_{c}" for m in ("min", "max") for c in "rgb"]
    chunk = np.zeros(chunks, dtype=[(nm, "f4") for nm in names])
    for nm in names:
        low = nm.startswith("min")
        chunk[nm] = g.uniform(-2, -1, chunks) if low else g.uniform(1, 2, chunks)
    packed = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
    vertex = np.zeros(n, dtype=[(nm, "u4") for nm in packed])
    for nm in packed:
        vertex[nm] = g.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    sh = np.zeros(n, dtype=[(f"f_rest_{i}", "u1") for i in range(9)])
    for i in range(9):
        sh[f"f_rest_{i}"] = g.integers(0, 256, n)
    elements = [
        PlyElement.describe(chunk, "chunk"),
        PlyElement.describe(vertex, "vertex"),
        PlyElement.describe(sh, "sh"),
    ]
    buffer = io.BytesIO()
    PlyData(elements).write(buffer)
    return buffer.getvalue()


def sog_parts(n: int, seed: int) -> tuple[dict, dict[str, bytes]]:
    """A SOG v2 ``(meta, images)`` of ``n`` Gaussians with random texels (lossless WebP) and SH band 1."""
    from PIL import Image

    g = np.random.default_rng(seed)
    width = math.ceil(math.sqrt(n) / 4) * 4
    height = math.ceil(n / width / 4) * 4

    def webp(shape: tuple[int, int]) -> bytes:
        buffer = io.BytesIO()
        texels = g.integers(0, 256, (*shape, 4), dtype=np.uint8)
        Image.fromarray(texels, "RGBA").save(buffer, "WEBP", lossless=True, exact=True)
        return buffer.getvalue()

    book = lambda: np.sort(g.normal(0, 1.5, 256)).tolist()  # noqa: E731
    meta = {
        "version": 2, "count": n,
        "means": {"mins": [-2.0, -1.0, -0.5], "maxs": [1.0, 1.5, 2.0], "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": (np.sort(g.uniform(-6, -1, 256))).tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]}, "sh0": {"codebook": book(), "files": ["sh0.webp"]},
        "shN": {"count": 128, "bands": 1, "codebook": book(), "files": ["shN_centroids.webp", "shN_labels.webp"]},
    }  # fmt: skip
    names = ["means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp", "shN_labels.webp"]
    images = {name: webp((height, width)) for name in names}
    images["shN_centroids.webp"] = webp((2, 64 * 3))
    return meta, images


def sog_bytes(meta: dict, images: dict[str, bytes]) -> bytes:
    """A bundled ``.sog``: meta.json and the images in a zip (deflated)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("meta.json", json.dumps(meta))
        for name, data in images.items():
            z.writestr(name, data)
    return buffer.getvalue()


def spz_v4_bytes(scene: GaussianScene, *, streams: int | None = None, cut: int = 0) -> bytes:
    """An SPZ version 4 file as the reference lays it out (32-byte header, table of contents, one zstd
    stream per block; ovseg writes version 3); ``streams`` overrides the count in the header, ``cut``
    drops bytes from the end."""
    arrays = {k: getattr(scene, k).numpy() for k in ("means", "quats", "log_scales", "logit_opacities", "sh0", "shN")}
    blocks = [b.tobytes() for b in encode_columns(**arrays, version=4, fractional_bits=12).blocks() if b.size]
    packed = [zstandard.ZstdCompressor().compress(b) for b in blocks]
    count = len(blocks) if streams is None else streams
    header = struct.pack("<IIIBBBBI12x", MAGIC, 4, scene.num_gaussians, scene.sh_degree, 12, 0, count, 32)
    toc = b"".join(struct.pack("<QQ", len(p), len(b)) for p, b in zip(packed, blocks, strict=True))
    data = header + toc + b"".join(packed)
    return data[: len(data) - cut]


def gsplat_checkpoint_bytes(scene: GaussianScene) -> bytes:
    """A gsplat ``ckpt_*.pt``: ``{"step", "splats"}`` with log scales, logit opacities, wxyz quaternions."""
    splats = {
        "means": scene.means,
        "scales": scene.log_scales,
        "quats": scene.quats,
        "opacities": scene.logit_opacities,
    }
    buffer = io.BytesIO()
    torch.save({"step": 6999, "splats": {**splats, "sh0": scene.sh0, "shN": scene.shN}}, buffer)
    return buffer.getvalue()


def mutated_cases(seeds: list[tuple[str, bytes]], count: int, seed: int = 0) -> Iterator[tuple[str, str, bytes]]:
    """``count`` cases ``(name, mutation summary, bytes)``, seeds taken in turn; deterministic in ``seed``."""
    for index in range(count):
        g = np.random.default_rng([seed, index])
        name, data = seeds[index % len(seeds)]
        applied = []
        for _ in range(int(g.integers(1, 4))):
            mutation = _MUTATIONS[int(g.integers(len(_MUTATIONS)))]
            data = mutation(data, g)
            applied.append(mutation.__name__.lstrip("_"))
        own = Path(name).suffix
        suffix = own if own != ".ply" and g.random() < 0.9 else ".ply"  # misnamed now and then: content decides
        yield f"{index:05d}_{Path(name).stem}{suffix}", "+".join(applied), data


def _header_end(data: bytes) -> int:
    end = data.find(b"end_header\n")
    return end + len(b"end_header\n") if end >= 0 else min(len(data), 2048)


def _bit_flips(data: bytes, g: np.random.Generator) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for pos in g.integers(0, len(buf), int(g.integers(1, 17))):
        buf[pos] ^= 1 << int(g.integers(8))
    return bytes(buf)


def _header_bit_flips(data: bytes, g: np.random.Generator) -> bytes:
    end = _header_end(data)
    if end == 0:
        return data
    buf = bytearray(data)
    for pos in g.integers(0, end, int(g.integers(1, 5))):
        buf[pos] = int(g.integers(32, 127))
    return bytes(buf)


def _truncate(data: bytes, g: np.random.Generator) -> bytes:
    return data[: int(g.integers(0, len(data) + 1))]


def _junk(data: bytes, g: np.random.Generator) -> bytes:
    pos = int(g.integers(0, len(data) + 1))
    junk = g.integers(0, 256, int(g.integers(1, 4096)), dtype=np.uint8).tobytes()
    return data[:pos] + junk + data[pos:] if g.random() < 0.5 else data + junk


def _count(data: bytes, g: np.random.Generator) -> bytes:
    counts = list(re.finditer(rb"(element \S+ )(\d+)", data[: _header_end(data)]))
    if not counts:
        return data
    m = counts[int(g.integers(len(counts)))]
    choice = g.random()
    if choice < 0.5:
        new = _HUGE_COUNTS[int(g.integers(len(_HUGE_COUNTS)))]
    else:
        new = str(max(0, int(m.group(2)) + int(g.integers(-3, 4)))).encode()
    return data[: m.start(2)] + new + data[m.end(2) :]


def _header_line(data: bytes, g: np.random.Generator) -> bytes:
    end = _header_end(data)
    lines = data[:end].split(b"\n")
    if len(lines) < 3:
        return data
    i = int(g.integers(1, len(lines) - 1))
    action = int(g.integers(5))
    if action == 0:
        del lines[i]
    elif action == 1:
        lines.insert(i, lines[i])
    elif action == 2:
        lines.insert(i, b"property list uchar int vertex_indices")
    elif action == 3:
        lines[i] = re.sub(rb"property (\w+)", b"property " + [b"double", b"uchar", b"int", b"list"][i % 4], lines[i])
    else:
        j = int(g.integers(1, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines) + data[end:]


def _format(data: bytes, g: np.random.Generator) -> bytes:
    formats = [b"ascii", b"binary_little_endian", b"binary_big_endian", b"binary_middle_endian"]
    return re.sub(rb"format \S+", b"format " + formats[int(g.integers(len(formats)))], data, count=1)


def _comment_bomb(data: bytes, g: np.random.Generator) -> bytes:
    size = int(g.choice([100, 1 << 16, 1 << 20, 3 << 20]))
    at = data.find(b"\n") + 1
    return data[:at] + b"comment " + b"x" * size + b"\n" + data[at:]


def _nonfinite(data: bytes, g: np.random.Generator) -> bytes:
    start = _header_end(data)
    if len(data) - start < 4:
        return data
    buf = bytearray(data)
    for _ in range(int(g.integers(1, 40))):
        pos = start + 4 * int(g.integers(0, (len(data) - start) // 4))
        buf[pos : pos + 4] = _FLOAT_PATTERNS[int(g.integers(len(_FLOAT_PATTERNS)))]
    return bytes(buf)


def _ascii_values(data: bytes, g: np.random.Generator) -> bytes:
    if b"format ascii" not in data[:2048]:
        return data
    end = _header_end(data)
    words = data[end:].split(b" ")
    for _ in range(int(g.integers(1, 20))):
        i = int(g.integers(len(words)))
        words[i] = [b"nan", b"inf", b"-inf", b"1e400", b"x", b"0x10", b"", b"99999999999"][int(g.integers(8))]
    return data[:end] + b" ".join(words)


def _metadata(data: bytes, g: np.random.Generator) -> bytes:
    matches = list(re.finditer(rb"fvdb_ply_af_8198767135(\w+)\|(\w+)\|([^\n]*)", data[: _header_end(data)]))
    if not matches:
        return data
    m = matches[int(g.integers(len(matches)))]
    replacement = [b"nan", b"inf", b"1,", b"2,4", b"3,-1,4,4", b"", b"a|b", b"99999999999999999999"][int(g.integers(8))]
    group = 3 if g.random() < 0.7 else 2
    return data[: m.start(group)] + replacement + data[m.end(group) :]


def _splat_records(data: bytes, g: np.random.Generator) -> bytes:
    if len(data) < 32 or data.startswith(b"ply"):
        return data
    buf = bytearray(data)
    for _ in range(int(g.integers(1, 20))):
        pos = 32 * int(g.integers(0, len(data) // 32)) + 4 * int(g.integers(0, 6))
        buf[pos : pos + 4] = _FLOAT_PATTERNS[int(g.integers(len(_FLOAT_PATTERNS)))]
    return bytes(buf)


_MUTATIONS = (
    _bit_flips, _header_bit_flips, _truncate, _junk, _count, _header_line, _format,
    _comment_bomb, _nonfinite, _ascii_values, _metadata, _splat_records,
)  # fmt: skip
