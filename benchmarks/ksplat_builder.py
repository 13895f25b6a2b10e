"""Small ``.ksplat`` files laid out as mkkellogg's GaussianSplats3D writes them (ovseg only reads the format), for
the reader fuzz seeds and the hostile-header tests. The interop tests use files the library itself wrote."""

from __future__ import annotations

import struct

import numpy as np

from ovseg_core.io.ksplat_file import (
    DEFAULT_POSITION_RANGE,
    HEADER_BYTES,
    MAIN_HEADER,
    SECTION_HEADER,
    SECTION_HEADER_BYTES,
    SH_COMPONENTS,
    record_dtype,
    sh_slots,
)
from ovseg_core.scene import GaussianScene


def ksplat_bytes(scene: GaussianScene, *, level: int = 0, section_size: int = 0, bucket_size: int = 64) -> bytes:
    """The scene (SH kept up to degree 2) at compression ``level``, in sections of ``section_size`` splats (0: one);
    at levels 1-2 each run of ``bucket_size`` rows in file order is a bucket (the last one partial)."""
    degree = min(scene.sh_degree, 2)
    n = scene.num_gaussians
    means = scene.means.numpy().astype(np.float64)
    coeff, channel = sh_slots(degree)
    sh = scene.shN.numpy()[:, coeff, channel]
    lo, hi = (float(sh.min()), float(sh.max())) if sh.size else (-1.5, 1.5)
    hi = hi if hi > lo else lo + 1.0
    rgba = np.concatenate([scene.base_colors.numpy(), scene.opacities.numpy()[:, None]], axis=1)
    step = section_size or n
    headers, bodies = [], []
    for start in range(0, n, step):
        rows = np.arange(start, min(start + step, n))
        rec = np.zeros(len(rows), record_dtype(level, SH_COMPONENTS[degree]))
        rec["scale"] = scene.scales.numpy()[rows]
        rec["rot"] = scene.quats.numpy()[rows]
        rec["rgba"] = np.clip(np.round(rgba[rows] * 255), 0, 255)
        if degree:
            rec["sh"] = sh[rows] if level < 2 else np.clip(np.floor((sh[rows] - lo) / (hi - lo) * 255), 0, 255)
        lengths = [len(rows[i : i + bucket_size]) for i in range(0, len(rows), bucket_size)] if level else []
        full = sum(1 for m in lengths if m == bucket_size)
        centres, block = np.zeros((len(lengths), 3)), 1.0
        if level:
            chunks = np.split(means[rows], np.cumsum(lengths)[:-1])
            centres = np.array([(c.min(0) + c.max(0)) / 2 for c in chunks])
            offsets = means[rows] - np.repeat(centres, lengths, axis=0)
            block = 2.0 * float(np.abs(offsets).max()) * 1.001 + 1e-6
            rec["centre"] = np.round(offsets / (block / 2) * DEFAULT_POSITION_RANGE) + DEFAULT_POSITION_RANGE
        else:
            rec["centre"] = means[rows]
        body = np.array(lengths[full:], "<u4").tobytes() + centres.astype("<f4").tobytes() + rec.tobytes()
        fields = (len(rows), len(rows), bucket_size if level else 0, len(lengths), block if level else 0.0)
        fields += (12 if level else 0, DEFAULT_POSITION_RANGE if level else 0, len(body), full, len(lengths) - full)
        header = bytearray(SECTION_HEADER_BYTES)
        SECTION_HEADER.pack_into(header, 0, *fields, degree)
        headers.append(bytes(header))
        bodies.append(body)
    main = bytearray(HEADER_BYTES)
    MAIN_HEADER.pack_into(main, 0, 0, 1, len(headers), len(headers), n, n, level)
    struct.pack_into("<ff", main, 36, lo, hi)
    return bytes(main) + b"".join(headers) + b"".join(bodies)
