"""Training checkpoints as scenes: gsplat's ``ckpt_*.pt`` and fVDB Reality Capture's ``ckpt_*.pt``.

gsplat (``examples/simple_trainer.py``) saves ``{"step", "splats": state_dict}`` with ``means`` [N, 3],
``scales`` [N, 3] (log), ``quats`` [N, 4] (w, x, y, z, unnormalised), ``opacities`` [N] (logit),
``sh0`` [N, 1, 3] and ``shN`` [N, K, 3]. fVDB Reality Capture (``training/checkpoint.py``,
``Checkpoint.save``) saves ``{"version", "step", "run_name", "splats": GaussianSplat3d.state_dict(),
"config", "dataset_path", "dataset_transform", "dataset_splits", "optimizer", ...}`` whose splats hold
``means``, ``quats``, ``log_scales``, ``logit_opacities``, ``sh0`` [N, 1, D], ``shN`` [N, K, D] and
bookkeeping tensors. A bare splats dict (either naming) is read too.

Files are read with ``torch.load(weights_only=True)``, never a full unpickle. fVDB's config entries
pickle its own classes (an optimizer config dataclass, an enum); those globals are bound to an inert
placeholder that keeps nothing and runs no code, so the splats load without fVDB installed.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ovseg_core.errors import SceneFormatError
from ovseg_core.io.finite_rows import finite_rows
from ovseg_core.io.ply import normalize_quats_np
from ovseg_core.io.ply_table import read_regular_file
from ovseg_core.scene import GaussianScene

_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"  # torch's pre-1.6 format: pickled magic number
_NAMINGS = {
    "gsplat": {
        "means": "means", "quats": "quats", "log_scales": "scales",
        "logit_opacities": "opacities", "sh0": "sh0", "shN": "shN",
    },
    "fVDB": {k: k for k in ("means", "quats", "log_scales", "logit_opacities", "sh0", "shN")},
}  # fmt: skip


def looks_like_checkpoint(head: bytes) -> bool:
    """Whether the first bytes are a torch checkpoint (a zip whose first entry is its pickle, or the legacy format)."""
    if head.startswith(_LEGACY_MAGIC):
        return True
    if head[:4] != b"PK\x03\x04" or len(head) < 30:
        return False
    name_length = int.from_bytes(head[26:28], "little")
    name = head[30 : 30 + name_length]
    return name == b"data.pkl" or name.endswith(b"/data.pkl")


_LOAD_ERRORS = (
    pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, KeyError, AttributeError, IndexError,
    OverflowError, NotImplementedError, OSError,
)  # fmt: skip


class _Inert:
    """Stands in for any class or function a checkpoint pickles outside torch's allowlist."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def read_checkpoint(path: str | os.PathLike[str]) -> GaussianScene:
    path = Path(path)
    read_regular_file(path, max_bytes=0)  # missing, a folder or a FIFO: the same errors as every reader
    top = _load(path)
    if not isinstance(top, dict):
        raise SceneFormatError(f"{path}: checkpoint holds a {type(top).__name__}, expected a dict with 'splats'")
    splats, where = (top["splats"], "splats.") if "splats" in top else (top, "")
    if not isinstance(splats, dict):
        raise SceneFormatError(f"{path}: checkpoint key 'splats' is a {type(splats).__name__}, expected a dict")
    if "means" not in splats:
        raise SceneFormatError(f"{path}: checkpoint has no key '{where}means' (keys: {sorted(map(str, splats))[:12]})")
    trainer = "fVDB" if "log_scales" in splats else "gsplat"
    naming = _NAMINGS[trainer]
    if trainer == "gsplat" and "sh0" not in splats and ("colors" in splats or "features" in splats):
        raise SceneFormatError(
            f"{path}: gsplat checkpoint with appearance embeddings ('{where}features'/'{where}colors', no "
            f"'{where}sh0'): its colours come from a network ovseg does not run; export a PLY from gsplat"
        )
    columns = {name: _tensor(splats, key, f"{where}{key}", path) for name, key in naming.items()}
    _check_shapes(columns, {name: f"{where}{key}" for name, key in naming.items()}, path)
    n = len(columns["means"])
    if n == 0:
        raise SceneFormatError(f"{path}: the checkpoint holds zero Gaussians")
    columns["quats"] = normalize_quats_np(columns["quats"])
    with np.errstate(all="ignore"):
        keep = finite_rows(columns, path, n)
    if keep is not None:
        columns = {k: v[keep] for k, v in columns.items()}
    return GaussianScene(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in columns.items()})


def _load(path: Path) -> Any:
    inert: list[Any] = []
    try:
        if hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint") and zipfile.is_zipfile(path):
            inert = [(_Inert, name) for name in torch.serialization.get_unsafe_globals_in_checkpoint(path)]
        with torch.serialization.safe_globals(inert):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except _LOAD_ERRORS as e:  # torch.load's many ways of saying the archive or its pickle is broken
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise SceneFormatError(f"{path}: not a readable torch checkpoint ({reason})") from None
    except zipfile.BadZipFile as e:
        raise SceneFormatError(f"{path}: corrupt checkpoint archive ({e})") from None


def _tensor(splats: dict, key: str, label: str, path: Path) -> np.ndarray:
    if key not in splats:
        raise SceneFormatError(f"{path}: checkpoint has no key '{label}'")
    value = splats[key]
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        kind = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
        raise SceneFormatError(f"{path}: checkpoint key '{label}' is {kind}, expected a float tensor")
    return value.detach().to(torch.float32).numpy().copy()  # a copy: the file stays memory-mapped


def _check_shapes(columns: dict[str, np.ndarray], labels: dict[str, str], path: Path) -> None:
    if columns["logit_opacities"].ndim == 2 and columns["logit_opacities"].shape[1:] == (1,):  # some keep [N, 1]
        columns["logit_opacities"] = columns["logit_opacities"][:, 0]
    n = columns["means"].shape[0] if columns["means"].ndim else -1
    d = columns["sh0"].shape[-1] if columns["sh0"].ndim == 3 and columns["sh0"].shape[-1] > 0 else -1
    expected = {
        "means": ((n, 3), "[N, 3]"), "quats": ((n, 4), "[N, 4]"), "log_scales": ((n, 3), "[N, 3]"),
        "logit_opacities": ((n,), "[N]"), "sh0": ((n, 1, d), "[N, 1, D]"),
    }  # fmt: skip
    for name, (shape, text) in expected.items():
        if columns[name].shape != shape:
            raise SceneFormatError(
                f"{path}: checkpoint key '{labels[name]}' has shape {list(columns[name].shape)}, expected {text}"
            )
    shn = columns["shN"]
    if shn.ndim != 3 or shn.shape[0] != n or shn.shape[2] != d or shn.shape[1] not in (0, 3, 8, 15):
        raise SceneFormatError(
            f"{path}: checkpoint key '{labels['shN']}' has shape {list(shn.shape)}, expected [N, K, D] with "
            "K = 0, 3, 8 or 15 (SH degree up to 3)"
        )
