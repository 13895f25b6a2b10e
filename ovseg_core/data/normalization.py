"""Similarity transforms between a capture's world frame and a reconstruction's frame.

fvdb-reality-capture trains splats in a normalised frame: its NormalizeScene transform is a
4x4 similarity ``p' = T p = s R p + t`` and fVDB PLYs store it as the
``normalization_transform`` metadata. Cameras from the raw dataset must go through the same
transform to see the splats where the photos saw the scene.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ovseg_core.camera import Camera
from ovseg_core.errors import SceneFormatError, UsageError

NORMALIZATION_METADATA_KEY = "normalization_transform"

_ORTHONORMAL_TOL = 1e-3  # float32 matrices from PLY metadata carry ~1e-7 relative error


def similarity_parts(transform: Any) -> tuple[float, np.ndarray, np.ndarray]:
    """Split a 4x4 similarity ``T = [[s R, t], [0, 1]]`` into ``(s, R [3, 3], t [3])``.

    ``R`` is re-orthonormalised (nearest rotation) so downstream rigid inverses are exact.

    Raises:
        ValueError: ``transform`` is not a 4x4 uniform-scale rotation plus translation
            (shear, non-uniform scale, reflection or a projective last row).
    """
    m = np.asarray(transform, dtype=np.float64)
    if m.shape == (16,):
        m = m.reshape(4, 4)
    if m.shape != (4, 4):
        raise UsageError(f"normalization transform must be [4, 4], got {list(m.shape)}")
    if not np.isfinite(m).all():
        raise UsageError("normalization transform has non-finite entries")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise UsageError(f"normalization transform's last row must be [0, 0, 0, 1], got {m[3].tolist()}")
    a = m[:3, :3]
    det = float(np.linalg.det(a))
    if det <= 0:
        raise UsageError(f"normalization transform must keep handedness and not collapse space (det = {det:.3g})")
    scale = det ** (1.0 / 3.0)
    rot = a / scale
    err = float(np.abs(rot @ rot.T - np.eye(3)).max())
    if err > _ORTHONORMAL_TOL:
        raise UsageError(
            "normalization transform is not a similarity (uniform scale x rotation + translation): "
            f"its 3x3 block divided by the scale {scale:.6g} is off orthonormal by {err:.3g}"
        )
    u, _, vt = np.linalg.svd(rot)
    return scale, u @ vt, m[:3, 3].copy()


def transform_camera(camera: Camera, transform: Any) -> Camera:
    """The camera seeing, in the frame ``p' = T p``, the image it saw of ``p``.

    ``w2c' = diag(s, s, s, 1) @ w2c @ inv(T)``: the rotation stays orthonormal, depths scale by
    ``s`` and ``K`` is unchanged, so every point projects to the same pixel.
    """
    scale, rot, trans = similarity_parts(transform)
    inv_t = np.eye(4)
    inv_t[:3, :3] = rot.T / scale
    inv_t[:3, 3] = -rot.T @ trans / scale
    w2c = np.diag([scale, scale, scale, 1.0]) @ camera.w2c @ inv_t
    w2c[3] = [0.0, 0.0, 0.0, 1.0]
    return Camera(w2c, camera.K, camera.width, camera.height)


def transform_points(points: np.ndarray, transform: Any) -> np.ndarray:
    """``points`` [N, 3] -> ``T p`` [N, 3] (float64)."""
    m = np.asarray(transform, dtype=np.float64).reshape(4, 4)
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:3, :3].T + m[:3, 3]


def normalization_from_metadata(metadata: Mapping[str, Any] | None) -> np.ndarray | None:
    """The ``normalization_transform`` [4, 4] float64 in a reconstruction's metadata, or None.

    Accepts numpy arrays, torch tensors and nested lists (16 values or 4x4).

    Raises:
        ValueError: the entry exists but is not a valid similarity.
    """
    if not metadata or NORMALIZATION_METADATA_KEY not in metadata:
        return None
    value = metadata[NORMALIZATION_METADATA_KEY]
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise SceneFormatError(f"reconstruction metadata {NORMALIZATION_METADATA_KEY!r} is not numeric: {e}") from e
    if m.size != 16:
        raise SceneFormatError(
            f"reconstruction metadata {NORMALIZATION_METADATA_KEY!r} must be 4x4, got shape {list(m.shape)}"
        )
    m = m.reshape(4, 4)
    similarity_parts(m)
    return m
