"""Checks the reader and interop tests share: two decodes hold the same Gaussians, and a hostile
file is refused with a ``SceneFormatError`` naming it, promptly and (optionally) in little memory."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ovseg_core.errors import SceneFormatError
from ovseg_core.io import load_scene

GAUSSIAN_FIELDS = ("means", "log_scales", "logit_opacities", "sh0", "shN")


def assert_same_gaussians(a, b, *, atol: float = 1e-6) -> None:  # noqa: ANN001
    """Same count, SH degree and values (``atol``, absolute), rotations equal up to sign (q and -q)."""
    assert a.num_gaussians == b.num_gaussians and a.sh_degree == b.sh_degree
    for name in GAUSSIAN_FIELDS:
        np.testing.assert_allclose(getattr(a, name).numpy(), getattr(b, name).numpy(), rtol=0, atol=atol, err_msg=name)
    dots = np.abs((a.quats.numpy().astype(np.float64) * b.quats.numpy()).sum(1))
    assert 1 - dots.min() < 1e-6


def assert_refused(path: Path, match: str, *, max_traced_bytes: int | None = None) -> None:
    """``load_scene(path)`` raises a ``SceneFormatError`` matching ``match`` and naming the file,
    within 5 s (a hang guard, not a speed target) and, if given, tracing at most ``max_traced_bytes``."""
    start = time.perf_counter()
    if max_traced_bytes is not None:
        tracemalloc.start()
    try:
        with pytest.raises(SceneFormatError, match=match) as info:
            load_scene(path)
        peak = tracemalloc.get_traced_memory()[1] if max_traced_bytes is not None else 0
    finally:
        if max_traced_bytes is not None:
            tracemalloc.stop()
    assert str(path) in str(info.value)
    assert time.perf_counter() - start < 5.0
    if max_traced_bytes is not None:
        assert peak < max_traced_bytes, f"{path.name}: {peak} bytes traced while refusing it"
