"""Validation of loaded language fields before any (unchecked, numba) kernel indexes with them.

A checkpoint is data from disk, possibly downloaded: the relevancy and blending kernels index
``basis[idx[i, j]]`` without bounds checks, so an out-of-range code index would read outside the
array or crash the process. Everything a kernel relies on is checked here once, at load time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ovseg_core.errors import FieldMismatchError
from ovseg_core.fields.config import MAX_BASIS_ROWS, MAX_EMBED_DIM

MAX_LEVEL = 3
"""Feature levels are 0 (default), 1 small, 2 medium, 3 large."""
MAX_ABS_VALUE = 1e6
"""Largest magnitude of a mixing weight or basis value: codes mix entries with weights summing to
about 1 per layer and bases hold unit-scale CLIP features; squared norms of anything within this
bound stay far inside float32, so relevancy cannot overflow."""


def check_stored_sizes(levels: Mapping[object, object], field_config: Mapping[str, object], source: str) -> None:
    """Raise ``FieldMismatchError`` naming ``source`` when a checkpoint's stored tensors or field
    settings claim more than ``MAX_BASIS_ROWS`` basis entries or ``MAX_EMBED_DIM`` dims. Runs on the
    raw payload, before any field is built or Gram matrix formed (a 200,000-row basis would need 160 GB)."""
    if not isinstance(levels, Mapping):
        raise FieldMismatchError(f"{source}: malformed language-field checkpoint (levels are not a mapping)")
    if isinstance(field_config, Mapping):
        layers, size = field_config.get("num_layers", 1), field_config.get("codebook_size", 64)
        if isinstance(layers, int) and isinstance(size, int) and layers * size > MAX_BASIS_ROWS:
            raise FieldMismatchError(
                f"{source}: field settings claim {layers} x {size} codebook entries; at most {MAX_BASIS_ROWS} "
                "are supported (the checkpoint is corrupt or not from ovseg)"
            )
    for lvl, stored in levels.items():
        if not isinstance(stored, Mapping):
            raise FieldMismatchError(f"{source}: level {lvl} is not a mapping of tensors")
        basis = stored.get("basis", stored.get("codebooks"))
        if not isinstance(basis, torch.Tensor) or basis.ndim < 2:
            continue  # absent or malformed: the full check names it
        rows, dim = math.prod(basis.shape[:-1]), int(basis.shape[-1])
        if rows > MAX_BASIS_ROWS:
            raise FieldMismatchError(
                f"{source}: level {lvl} basis has {rows:,} entries; at most {MAX_BASIS_ROWS} are supported "
                "(queries would need an [E, E] matrix; the checkpoint is corrupt or not from ovseg)"
            )
        if dim > MAX_EMBED_DIM:
            raise FieldMismatchError(f"{source}: level {lvl} features have {dim:,} dims; at most {MAX_EMBED_DIM}")


def check_levels(
    levels: Mapping[int, object],
    num_gaussians: int,
    embed_dim: int,
    source: str,
    raw: Mapping[object, Mapping[str, object]] | None = None,
) -> None:
    """Raise ``FieldMismatchError`` naming ``source`` unless every level is consistent.

    Each level's ``idx`` ``[N, J]`` is an integer tensor in ``[0, E)``, ``val`` ``[N, J]`` and
    ``basis`` ``[E, D]`` are finite floats, N is ``num_gaussians`` and D is ``embed_dim``; an
    ``evidence`` ``[N]``, where present, is finite and >= 0.
    ``raw`` (the stored tensors) is checked for an integer ``idx`` before any cast could hide it.
    """
    if not levels:
        raise FieldMismatchError(f"{source}: language-field checkpoint holds no feature level")
    if num_gaussians <= 0 or not 0 < embed_dim <= MAX_EMBED_DIM:
        raise FieldMismatchError(
            f"{source}: language-field checkpoint claims {num_gaussians} Gaussians and {embed_dim}-dim features"
        )
    for lvl, stored in (raw or {}).items():
        idx = stored.get("idx") if isinstance(stored, Mapping) else None
        if isinstance(idx, torch.Tensor) and (idx.dtype.is_floating_point or idx.dtype == torch.bool):
            raise FieldMismatchError(f"{source}: level {lvl} code indices are {idx.dtype}, not integers")
    for lvl, codes in levels.items():
        where = f"{source}: level {lvl}"
        if not isinstance(lvl, int) or not 0 <= lvl <= MAX_LEVEL:
            raise FieldMismatchError(f"{where}: feature levels are 0-{MAX_LEVEL}")
        idx, val, basis = codes.idx, codes.val, codes.basis  # type: ignore[attr-defined]
        if not all(isinstance(t, torch.Tensor) for t in (idx, val, basis)):
            raise FieldMismatchError(f"{where}: idx, val and basis must be tensors")
        if idx.ndim != 2 or idx.shape[0] != num_gaussians or idx.shape[1] == 0:
            raise FieldMismatchError(
                f"{where}: code indices have shape {list(idx.shape)}, expected [{num_gaussians}, J] (J >= 1)"
            )
        if val.shape != idx.shape:
            raise FieldMismatchError(f"{where}: weights have shape {list(val.shape)}, indices {list(idx.shape)}")
        if basis.ndim != 2 or basis.shape[0] == 0 or basis.shape[1] != embed_dim:
            raise FieldMismatchError(f"{where}: basis has shape {list(basis.shape)}, expected [E, {embed_dim}]")
        if basis.shape[0] > MAX_BASIS_ROWS:
            raise FieldMismatchError(f"{where}: basis has {basis.shape[0]:,} entries; at most {MAX_BASIS_ROWS}")
        if idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise FieldMismatchError(f"{where}: code indices are {idx.dtype}, not integers")
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= basis.shape[0]:
            raise FieldMismatchError(
                f"{where}: code indices span {lo}..{hi} but the basis has {basis.shape[0]} rows; "
                "the checkpoint is corrupt or was edited"
            )
        for name, t in (("weights", val), ("basis", basis)):
            if not t.dtype.is_floating_point:
                raise FieldMismatchError(f"{where}: {name} are {t.dtype}, expected floats")
            if not torch.isfinite(t).all():
                raise FieldMismatchError(f"{where}: {name} contain NaN or Inf")
            if t.numel() and float(t.abs().max()) > MAX_ABS_VALUE:
                raise FieldMismatchError(
                    f"{where}: {name} reach {float(t.abs().max()):.3g}; values beyond {MAX_ABS_VALUE:g} are not "
                    "codes of a feature (the checkpoint is corrupt or was edited)"
                )
        evidence = getattr(codes, "evidence", None)
        if evidence is not None:
            if not isinstance(evidence, torch.Tensor) or evidence.shape != (num_gaussians,):
                shape = list(evidence.shape) if isinstance(evidence, torch.Tensor) else type(evidence).__name__
                raise FieldMismatchError(f"{where}: evidence has shape {shape}, expected [{num_gaussians}]")
            if not evidence.dtype.is_floating_point or not torch.isfinite(evidence).all() or bool((evidence < 0).any()):
                raise FieldMismatchError(f"{where}: evidence must be finite floats >= 0")


def check_instance_tensors(payload: Mapping[str, object], source: str) -> None:
    """Raise ``FieldMismatchError`` unless an instances file's tensors are usable as stored:
    integer ``labels``/``sizes``/``support`` (no silent float truncation), finite float ``features``
    ``[K, D]`` and non-negative counts. Shapes and label range are checked by ``InstanceSet``."""
    for name in ("labels", "sizes", "support", "features"):
        if not isinstance(payload.get(name), torch.Tensor):
            raise FieldMismatchError(f"{source}: instances file has no {name} tensor")
    for name in ("labels", "sizes", "support"):
        t = payload[name]
        if t.dtype.is_floating_point or t.dtype == torch.bool:  # type: ignore[union-attr]
            raise FieldMismatchError(f"{source}: instance {name} are {t.dtype}, not integers")  # type: ignore[union-attr]
    for name in ("sizes", "support"):
        t = payload[name]
        if t.numel() and int(t.min()) < 0:  # type: ignore[union-attr]
            raise FieldMismatchError(f"{source}: instance {name} must not be negative")
    features = payload["features"]
    if not features.dtype.is_floating_point or not torch.isfinite(features).all():  # type: ignore[union-attr]
        raise FieldMismatchError(f"{source}: instance features must be finite floats")
    scores = payload.get("scores")
    if isinstance(scores, torch.Tensor) and not (scores.dtype.is_floating_point and torch.isfinite(scores).all()):
        raise FieldMismatchError(f"{source}: instance scores must be finite floats")
