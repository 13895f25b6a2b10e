"""mkkellogg GaussianSplats3D ``.ksplat`` (read only).

Layout (little-endian): a 4096-byte header (u8 version major 0 / minor >= 1, u32 section slots at byte 4,
u32 splat count at 16, u16 compression level at 20, f32 SH range min/max at 36/40), one 1024-byte header per
section slot, then each section: u32 lengths of its partially filled buckets, f32x3 bucket centres, and
its splat records. A record is centre, scale (linear), rotation (w, x, y, z), RGBA8 (colour, linear
opacity) and the SH rest coefficients band by band, channel-major within a band:

- level 0: float32 throughout;
- level 1: centres as u16 offsets from their bucket's centre ((v - range) * block / 2 / range), the rest
  half floats;
- level 2: as level 1 with SH as u8 over the header's [min, max].

The header has no signature, so the format is chosen by the ``.ksplat`` suffix. Every count is checked
against the file's size before anything is allocated. A scale stored as 0 (a half float underflows below
6e-8) decodes to that smallest step rather than log(0); negative or non-finite values are dropped.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

import numpy as np
import torch

from ovseg_core.errors import SceneFormatError
from ovseg_core.io.finite_rows import finite_rows
from ovseg_core.io.ply import normalize_quats_np
from ovseg_core.io.ply_table import read_regular_file
from ovseg_core.scene import SH_C0, GaussianScene

HEADER_BYTES = 4096
SECTION_HEADER_BYTES = 1024
BUCKET_BYTES = 12
"""One bucket centre, f32x3 (the only bucket layout the format has)."""
DEFAULT_POSITION_RANGE = 32767
"""Quantisation half-range of compressed centres when a section header leaves it 0."""
DEFAULT_SH_RANGE = 1.5
"""Level 2's SH range is [-1.5, 1.5] when the header leaves it 0."""
SH_COMPONENTS = (0, 9, 24, 45)
"""Stored SH rest values per record by degree."""
SMALLEST_SCALE = 2.0**-24
"""The smallest positive half float: what a stored 0 scale (an underflow) decodes to."""

MAIN_HEADER = struct.Struct("<BBxxIIIIH")  # major, minor, section slots, sections, max splats, splats, level
SECTION_HEADER = struct.Struct("<IIIIfHxxIIIIH")  # splats, max splats, bucket size, buckets, block size, bucket bytes,
# position range, storage bytes, full buckets, partial buckets, SH degree


@dataclasses.dataclass(frozen=True)
class _Section:
    splats: int
    max_splats: int
    bucket_size: int
    buckets: int
    block_size: float
    bucket_bytes: int
    position_range: int
    storage_bytes: int
    full_buckets: int
    partial_buckets: int
    sh_degree: int


def record_dtype(level: int, sh_components: int) -> np.dtype:
    """One splat record's layout at ``level``."""
    value = "<f4" if level == 0 else "<f2"
    fields = [("centre", "<f4" if level == 0 else "<u2", 3), ("scale", value, 3), ("rot", value, 4), ("rgba", "u1", 4)]
    if sh_components:
        fields.append(("sh", {0: "<f4", 1: "<f2", 2: "u1"}[level], sh_components))
    return np.dtype(fields)


def sh_slots(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """For each stored SH value, its (coefficient, channel) in ``shN [N, K-1, 3]``: bands in order, and
    within a band all red coefficients, then green, then blue."""
    coeff, channel = [], []
    first = 0
    for band in range(1, degree + 1):
        width = 2 * band + 1
        for i in range(3 * width):
            channel.append(i // width)
            coeff.append(first + i % width)
        first += width
    return np.array(coeff, dtype=np.intp), np.array(channel, dtype=np.intp)


def _sections(raw: bytes, path: Path, slots: int, level: int) -> list[_Section]:
    if HEADER_BYTES + slots * SECTION_HEADER_BYTES > len(raw):
        raise SceneFormatError(f"{path}: {slots} section headers do not fit in the file's {len(raw)} bytes")
    out = []
    for i in range(slots):
        s = _Section(*SECTION_HEADER.unpack_from(raw, HEADER_BYTES + i * SECTION_HEADER_BYTES))
        if s.sh_degree >= len(SH_COMPONENTS):
            raise SceneFormatError(f"{path}: section {i} claims SH degree {s.sh_degree} (the format has 0-3)")
        if s.splats > s.max_splats:
            raise SceneFormatError(f"{path}: section {i} holds {s.splats} splats in room for {s.max_splats}")
        if level >= 1 and s.buckets and s.bucket_bytes != BUCKET_BYTES:
            raise SceneFormatError(f"{path}: section {i} has {s.bucket_bytes}-byte buckets (expected {BUCKET_BYTES})")
        out.append(s)
    return out


def _bucket_of_each_splat(raw: bytes, path: Path, base: int, s: _Section, index: int) -> np.ndarray:
    """``[max_splats]`` bucket index: full buckets of ``bucket_size`` first, then the partial ones' lengths."""
    partial = np.frombuffer(raw, "<u4", s.partial_buckets, base).astype(np.int64)
    covered = s.full_buckets * s.bucket_size + int(partial.sum())
    if s.full_buckets + s.partial_buckets > s.buckets or covered != s.max_splats:
        raise SceneFormatError(
            f"{path}: section {index}'s buckets ({s.full_buckets} full of {s.bucket_size}, {s.partial_buckets} "
            f"partial, {s.buckets} in all) do not cover its {s.max_splats} splats"
        )
    lengths = np.concatenate([np.full(s.full_buckets, s.bucket_size, np.int64), partial])
    return np.repeat(np.arange(len(lengths)), lengths)


def _bucket_region_bytes(s: _Section) -> int:
    return s.bucket_bytes * s.buckets + 4 * s.partial_buckets


def _section_bytes(s: _Section, level: int) -> int:
    return _bucket_region_bytes(s) + record_dtype(level, SH_COMPONENTS[s.sh_degree]).itemsize * s.max_splats


def _decode_section(
    raw: bytes, path: Path, base: int, s: _Section, index: int, level: int, sh_range: tuple[float, float]
) -> dict[str, np.ndarray]:
    """One section's columns (float64, ``shN`` at the section's own degree), after checking it fits the file."""
    record = record_dtype(level, SH_COMPONENTS[s.sh_degree])
    bucket_bytes = _bucket_region_bytes(s)
    end = base + _section_bytes(s, level)
    if end > len(raw):
        raise SceneFormatError(
            f"{path}: section {index} needs {end - base} bytes from byte {base}; the file has {len(raw)} (truncated?)"
        )
    rec = np.frombuffer(raw, record, s.splats, base + bucket_bytes)
    centre = rec["centre"].astype(np.float64)
    if level >= 1:
        bucket = _bucket_of_each_splat(raw, path, base, s, index)[: s.splats]
        centres = np.frombuffer(raw, "<f4", 3 * s.buckets, base + 4 * s.partial_buckets).reshape(-1, 3)
        position_range = s.position_range or DEFAULT_POSITION_RANGE
        with np.errstate(all="ignore"):  # a non-finite block size gives NaN centres, dropped later
            centre = (centre - position_range) * (s.block_size / 2.0 / position_range) + centres[bucket]
    scale = rec["scale"].astype(np.float64)
    rgba = rec["rgba"].astype(np.float64) / 255.0
    shn = np.zeros((s.splats, (s.sh_degree + 1) ** 2 - 1, 3), np.float64)
    if s.sh_degree:
        values = rec["sh"].astype(np.float64)
        if level == 2:
            values = sh_range[0] + values / 255.0 * (sh_range[1] - sh_range[0])
        coeff, channel = sh_slots(s.sh_degree)
        shn[:, coeff, channel] = values
    alpha = np.clip(rgba[:, 3], 1e-6, 1 - 1e-6)
    with np.errstate(all="ignore"):  # negative or non-finite scales give NaN, dropped by finite_rows
        log_scales = np.log(np.where(scale == 0, SMALLEST_SCALE, np.where(scale > 0, scale, np.nan)))
    return {
        "means": centre,
        "quats": rec["rot"].astype(np.float64),
        "log_scales": log_scales,
        "logit_opacities": np.log(alpha / (1 - alpha)),
        "sh0": ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :],
        "shN": shn,
    }


def read_ksplat(path: str | os.PathLike[str]) -> GaussianScene:
    """Read a ``.ksplat`` (compression level 0, 1 or 2; SH degree 0-3, sections of mixed degree padded).

    Raises:
        SceneFormatError: naming the file: too short, unknown version or level, counts that do not fit the
            file, buckets that do not cover their splats, zero Gaussians.
    """
    path = Path(path)
    raw = read_regular_file(path)
    if len(raw) < HEADER_BYTES:
        raise SceneFormatError(f"{path}: {len(raw)} bytes is shorter than the {HEADER_BYTES}-byte .ksplat header")
    major, minor, slots, _, _, splats, level = MAIN_HEADER.unpack_from(raw)
    if major != 0 or minor < 1:
        raise SceneFormatError(f"{path}: .ksplat version {major}.{minor} (ovseg reads 0.1 and later 0.x)")
    if level > 2:
        raise SceneFormatError(f"{path}: compression level {level} (the format has 0, 1 and 2)")
    sections = _sections(raw, path, slots, level)
    if sum(s.splats for s in sections) != splats:
        raise SceneFormatError(
            f"{path}: the header counts {splats} splats, its sections {sum(s.splats for s in sections)}"
        )
    if splats == 0:
        raise SceneFormatError(f"{path}: the .ksplat file holds zero Gaussians")
    # JavaScript's `value || default`: 0 and NaN mean the default
    lo, hi = (float(v) for v in np.frombuffer(raw, "<f4", 2, 36))
    sh_range = (lo if lo == lo and lo != 0 else -DEFAULT_SH_RANGE, hi if hi == hi and hi != 0 else DEFAULT_SH_RANGE)
    degree = max(s.sh_degree for s in sections if s.splats)
    parts = []
    base = HEADER_BYTES + slots * SECTION_HEADER_BYTES
    for i, s in enumerate(sections):
        part = _decode_section(raw, path, base, s, i, level, sh_range)
        part["shN"] = np.pad(part["shN"], ((0, 0), (0, (degree + 1) ** 2 - 1 - part["shN"].shape[1]), (0, 0)))
        parts.append(part)
        base += _section_bytes(s, level)
    columns = {k: np.concatenate([p[k] for p in parts]).astype(np.float32) for k in parts[0]}
    keep = finite_rows(columns, path, splats)
    if keep is not None:
        columns = {k: v[keep] for k, v in columns.items()}
    columns["quats"] = normalize_quats_np(columns["quats"])
    return GaussianScene(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in columns.items()})
