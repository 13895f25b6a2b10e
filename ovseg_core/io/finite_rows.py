"""Dropping Gaussians whose stored values are not finite, the same way in every reader."""

from __future__ import annotations

import os
import warnings

import numpy as np

from ovseg_core.errors import SceneFormatError

MAX_LOG_SCALE = 88.0
"""exp(88.7) overflows float32: a larger log-scale is an infinite Gaussian, dropped like an Inf."""
MAX_COORDINATE = 1e12
"""Centres farther out than this are dropped like an Inf: squared distances would overflow float32
and no camera can frame them (its offset from them vanishes in float64); a planet in millimetres is 1.3e10."""


def finite_rows(columns: dict[str, np.ndarray], path: str | os.PathLike[str], n: int) -> np.ndarray | None:
    """The mask ``[n]`` of rows whose columns (each ``[n, ...]``) are all finite, or None when all are.

    Rows with a ``log_scales`` entry above ``MAX_LOG_SCALE`` or a ``means`` coordinate beyond
    ``MAX_COORDINATE`` count as infinite too. Warns with the
    number dropped; ``SceneFormatError`` when no row is left.
    """
    keep = np.ones(n, dtype=bool)
    for name, values in columns.items():
        flat = values.reshape(n, -1)
        keep &= np.isfinite(flat).all(axis=1)
        if name == "log_scales":
            with np.errstate(invalid="ignore"):
                keep &= (flat <= MAX_LOG_SCALE).all(axis=1)
        if name == "means":
            with np.errstate(invalid="ignore"):
                keep &= (np.abs(flat) <= MAX_COORDINATE).all(axis=1)
    if keep.all():
        return None
    dropped = int((~keep).sum())
    if dropped == n:
        raise SceneFormatError(
            f"{path}: all {n} Gaussians contain NaN or Inf values (or centres beyond {MAX_COORDINATE:g})"
        )
    warnings.warn(f"{path}: dropped {dropped} of {n} Gaussians with NaN/Inf or out-of-range values", stacklevel=3)
    return keep
