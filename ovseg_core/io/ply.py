"""3DGS PLY files: the INRIA layout (binary either endian or ASCII) and fVDB's flavour.

INRIA: ``x y z [nx ny nz] f_dc_0.. f_rest_0.. opacity scale_0..2 rot_0..3`` with logit
opacity, log scales, (w, x, y, z) rotations and ``f_rest`` stored channel-major (all
coefficients of channel 0, then channel 1, ...). fVDB writes the same properties in another
order, without normals, and adds ``comment fvdb_ply_af_8198767135<key>|<type>|<value>``
metadata, where tensors live in an extra element named after the key.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from ovseg_core.errors import SceneFormatError
from ovseg_core.io.finite_rows import finite_rows
from ovseg_core.io.ply_table import PlyTable, read_ply_table
from ovseg_core.scene import GaussianScene

FVDB_PLY_MAGIC = "fvdb_ply_af_8198767135"
FVDB_VERSION_COMMENT = "fvdb_gs_ply_version fvdb_ply 1.0.0"

_CORE = ("x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
_NORMALS = ("nx", "ny", "nz")
_SH_PROPERTY = re.compile(r"^f_(dc|rest)_(\d{1,9})$")  # bounded: int() of a 5,000-digit name raises
_CANONICAL_INDEX = re.compile(r"^(0|[1-9]\d*)$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_]+$")
_TENSOR_PLY_TYPES = {"f4": "f4", "f8": "f8", "i4": "i4", "u4": "u4", "i2": "i2", "u2": "u2", "i1": "i1", "u1": "u1"}


def read_ply(path: str | os.PathLike[str]) -> GaussianScene:
    """Read an INRIA or fVDB Gaussian PLY.

    Raises:
        SceneFormatError: the file is not a PLY, is truncated, lacks a required property,
            holds zero Gaussians, or is a SuperSplat compressed PLY (use ``load_scene``).
    """
    path = Path(path)
    return scene_from_ply_table(read_ply_table(path), path)


def scene_from_ply_table(ply: PlyTable, path: str | os.PathLike[str]) -> GaussianScene:
    """The Gaussian scene in an already parsed INRIA or fVDB PLY (``path`` names it in messages)."""
    names = list(ply.elements)
    if "chunk" in names:
        raise SceneFormatError(f"{path}: a SuperSplat compressed PLY; read it with load_scene")
    if "vertex" not in names:
        raise SceneFormatError(f"{path}: PLY has no 'vertex' element (elements: {names}); not a Gaussian-splat file")
    data = ply.elements["vertex"]
    n = len(data)
    if n == 0:
        raise SceneFormatError(f"{path}: the PLY holds zero Gaussians")
    props = ply.properties("vertex")
    for p in props:
        if (m := _SH_PROPERTY.match(p)) and not _CANONICAL_INDEX.match(m.group(2)):
            raise SceneFormatError(
                f"{path}: property {p!r} is not a spherical-harmonics name (expected f_{m.group(1)}_{int(m.group(2))})"
            )
    missing = [p for p in _CORE if p not in props]
    dc = sorted(int(m.group(2)) for p in props if (m := _SH_PROPERTY.match(p)) and m.group(1) == "dc")
    rest = sorted(int(m.group(2)) for p in props if (m := _SH_PROPERTY.match(p)) and m.group(1) == "rest")
    if not dc:
        missing.append("f_dc_0")
    if missing:
        kind = "a point cloud or mesh" if {"x", "y", "z"} <= set(props) else "not a Gaussian-splat PLY"
        raise SceneFormatError(f"{path}: missing required properties {missing} ({kind})")
    num_channels = len(dc)
    not_float = [p for p in props if (p in _CORE or _SH_PROPERTY.match(p)) and data.dtype[p].kind != "f"]
    if not_float:
        # integers are quantised values of another layout: read as INRIA floats they are garbage
        raise SceneFormatError(
            f"{path}: properties {not_float[:8]} are {data.dtype[not_float[0]]}, the INRIA/fVDB layout stores "
            "them as float or double"
        )
    if dc != list(range(num_channels)) or rest != list(range(len(rest))):
        raise SceneFormatError(f"{path}: SH properties f_dc_*/f_rest_* are not numbered contiguously from 0")
    if len(rest) % num_channels or (len(rest) // num_channels) not in (0, 3, 8, 15, 24):
        raise SceneFormatError(
            f"{path}: {len(rest)} f_rest properties for {num_channels} channels is not an SH degree 0-4 layout"
        )
    with np.errstate(over="ignore"):  # a double beyond float32 becomes inf, then the row is dropped
        f32 = lambda name: np.asarray(data[name], dtype=np.float32)  # noqa: E731
        means = np.stack([f32("x"), f32("y"), f32("z")], axis=1)
        log_scales = np.stack([f32(f"scale_{i}") for i in range(3)], axis=1)
        quats = np.stack([f32(f"rot_{i}") for i in range(4)], axis=1)
        logit_opacities = f32("opacity")
        sh0 = np.stack([f32(f"f_dc_{c}") for c in range(num_channels)], axis=1)[:, None, :]
        num_rest = len(rest) // num_channels
        if num_rest:
            flat = np.stack([f32(f"f_rest_{i}") for i in range(len(rest))], axis=1)
            shN = flat.reshape(n, num_channels, num_rest).transpose(0, 2, 1)
        else:
            shN = np.zeros((n, 0, num_channels), np.float32)
    known = set(_CORE) | {f"f_dc_{c}" for c in dc} | {f"f_rest_{i}" for i in rest}
    extras = {p: np.ascontiguousarray(data[p]) for p in props if p not in known}
    metadata = _parse_fvdb_metadata(ply, path)
    tensor_keys = {c[len(FVDB_PLY_MAGIC) :].split("|", 1)[0] for c in ply.comments if c.startswith(FVDB_PLY_MAGIC)}
    extra_elements = [nm for nm in names if nm != "vertex" and nm not in tensor_keys]
    if extra_elements:
        warnings.warn(f"{path}: ignoring PLY elements {extra_elements}", stacklevel=2)
    columns = {
        "means": means, "log_scales": log_scales, "quats": quats,
        "logit_opacities": logit_opacities, "sh0": sh0, "shN": shN,
    }  # fmt: skip
    keep = finite_rows(columns, path, n)
    if keep is not None:
        columns = {k: v[keep] for k, v in columns.items()}
        extras = {k: v[keep] for k, v in extras.items()}
    return GaussianScene(
        means=torch.from_numpy(np.ascontiguousarray(columns["means"])),
        quats=torch.from_numpy(normalize_quats_np(columns["quats"])),
        log_scales=torch.from_numpy(np.ascontiguousarray(columns["log_scales"])),
        logit_opacities=torch.from_numpy(np.ascontiguousarray(columns["logit_opacities"])),
        sh0=torch.from_numpy(np.ascontiguousarray(columns["sh0"])),
        shN=torch.from_numpy(np.ascontiguousarray(columns["shN"])),
        extras=extras,
        metadata=metadata,
    )


def normalize_quats_np(quats: np.ndarray) -> np.ndarray:
    """Unit (w, x, y, z) quaternions ``[N, 4]`` float32.

    Rows already unit to float32 precision are left bit-identical, so read -> write -> read is
    exact; zero quaternions become the identity.
    """
    q64 = quats.astype(np.float64)
    norm = np.linalg.norm(q64, axis=1, keepdims=True)
    needs = np.abs(norm[:, 0] - 1.0) > 1e-6
    out = quats.astype(np.float32, copy=True)
    if needs.any():
        safe = np.where(norm[needs] > 0, norm[needs], 1.0)
        fixed = q64[needs] / safe
        fixed[norm[needs, 0] == 0] = (1.0, 0.0, 0.0, 0.0)
        out[needs] = fixed.astype(np.float32)
    return np.ascontiguousarray(out)


def write_ply(
    scene: GaussianScene,
    *,
    flavour: str = "inria",
    text: bool = False,
    byte_order: str = "<",
) -> bytes:
    """Encode a scene as a Gaussian PLY and return the file's bytes.

    Args:
        scene: the scene; extras are written after the standard properties (INRIA only).
        flavour: ``"inria"`` (the layout other splat viewers open; normals and extras kept)
            or ``"fvdb"`` (fVDB's property order, version comment and tensor metadata; no extras).
        text: ASCII instead of binary.
        byte_order: ``"<"`` little or ``">"`` big endian for binary files.
    """
    if flavour not in ("inria", "fvdb"):
        raise ValueError(f"flavour must be 'inria' or 'fvdb', got {flavour!r}")
    if scene.num_gaussians == 0:
        raise ValueError("cannot write a PLY with zero Gaussians")
    arrays = _property_arrays(scene)
    finite = np.ones(scene.num_gaussians, dtype=bool)
    for values in arrays.values():
        finite &= np.isfinite(values)
    if not finite.all():
        warnings.warn(f"dropped {int((~finite).sum())} Gaussians with NaN/Inf values on save", stacklevel=2)
    d, k = scene.num_channels, scene.shN.shape[1]
    sh_names = [f"f_dc_{c}" for c in range(d)] + [f"f_rest_{i}" for i in range(d * k)]
    if flavour == "inria":
        order = ["x", "y", "z"]
        order += [n for n in _NORMALS if n in scene.extras]
        order += sh_names + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
        order += [n for n in scene.extras if n not in _NORMALS]
    else:
        order = list(_CORE) + sh_names
    columns = {**arrays, **{k: v for k, v in scene.extras.items()}}
    dtype = [(name, columns[name].dtype.newbyteorder("=").str.lstrip("<>=|")) for name in order]
    dtype = [(name, _ply_dtype(code)) for name, code in dtype]
    table = np.empty(int(finite.sum()), dtype=dtype)
    for name in order:
        table[name] = columns[name][finite]
    comments, tensor_elements = _metadata_comments(scene.metadata, with_tensors=(flavour == "fvdb"))
    if flavour == "fvdb":
        comments.insert(0, FVDB_VERSION_COMMENT)
    elements = [PlyElement.describe(table, "vertex")] + tensor_elements
    ply = PlyData(elements, text=text, byte_order=byte_order, comments=comments)
    buffer = io.BytesIO()
    ply.write(buffer)
    return buffer.getvalue()


def _ply_dtype(code: str) -> str:
    if code not in _TENSOR_PLY_TYPES:
        raise ValueError(f"PLY cannot store properties of dtype {code!r}")
    return code


def _property_arrays(scene: GaussianScene) -> dict[str, np.ndarray]:
    np_ = lambda t: t.detach().cpu().float().numpy()  # noqa: E731
    means, quats, log_scales = np_(scene.means), np_(scene.quats), np_(scene.log_scales)
    cols: dict[str, np.ndarray] = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    cols["opacity"] = np_(scene.logit_opacities)
    for i in range(3):
        cols[f"scale_{i}"] = log_scales[:, i]
    for i in range(4):
        cols[f"rot_{i}"] = quats[:, i]
    sh0 = np_(scene.sh0)[:, 0, :]
    for c in range(scene.num_channels):
        cols[f"f_dc_{c}"] = sh0[:, c]
    # channel-major: f_rest index = channel * (K-1) + coefficient
    rest = np_(scene.shN).transpose(0, 2, 1).reshape(scene.num_gaussians, -1)
    for i in range(rest.shape[1]):
        cols[f"f_rest_{i}"] = rest[:, i]
    return {k: np.ascontiguousarray(v) for k, v in cols.items()}


def _parse_fvdb_metadata(ply: PlyTable, path: str | os.PathLike[str]) -> dict:
    """fVDB's ``key|type|value`` comments; a non-finite number or tensor is dropped with a warning
    (the geometry is still usable, a NaN camera or transform is not)."""
    metadata: dict = {}
    for comment in ply.comments:
        if not comment.startswith(FVDB_PLY_MAGIC):
            continue
        try:
            key, kind, value = comment[len(FVDB_PLY_MAGIC) :].split("|", 2)
        except ValueError:
            raise SceneFormatError(f"{path}: malformed fVDB metadata comment {comment[:80]!r}") from None
        if not key or key == "vertex":
            raise SceneFormatError(f"{path}: fVDB metadata has a bad key {key[:80]!r}")
        try:
            if kind == "str":
                metadata[key] = value
            elif kind == "int64":
                metadata[key] = int(value)
            elif kind == "double":
                metadata[key] = float(value)
            elif kind == "tensor":
                metadata[key] = _metadata_tensor(ply, key, value, path)
            else:
                raise SceneFormatError(f"{path}: unknown fVDB metadata type {kind[:40]!r} for {key!r}")
        except ValueError as e:
            if isinstance(e, SceneFormatError):
                raise
            raise SceneFormatError(f"{path}: fVDB metadata {key!r} has a bad {kind} value {value[:80]!r}") from None
        number = metadata[key]
        if isinstance(number, (float, np.ndarray)) and not np.isfinite(number).all():
            warnings.warn(f"{path}: dropped fVDB metadata {key!r}: it holds NaN/Inf values", stacklevel=3)
            del metadata[key]
    return metadata


def _metadata_tensor(ply: PlyTable, key: str, value: str, path: str | os.PathLike[str]) -> np.ndarray:
    dims = [int(v) for v in value.split(",") if v != ""]
    if not dims or dims[0] != len(dims) - 1 or any(d < 0 for d in dims):
        raise SceneFormatError(f"{path}: fVDB tensor metadata {key!r} has a bad shape {value[:80]!r}")
    shape = tuple(dims[1:])
    if key not in ply.elements or "value" not in ply.properties(key):
        raise SceneFormatError(f"{path}: fVDB tensor metadata {key!r} has no element with a 'value' property")
    flat = np.ascontiguousarray(ply.elements[key]["value"])
    if flat.size != math.prod(shape):
        raise SceneFormatError(f"{path}: fVDB tensor metadata {key!r} holds {flat.size} values, shape {shape}")
    return flat.reshape(shape)


def _metadata_comments(metadata: dict, *, with_tensors: bool) -> tuple[list[str], list[PlyElement]]:
    comments: list[str] = []
    elements: list[PlyElement] = []
    for key in sorted(metadata):
        value = metadata[key]
        if not _METADATA_KEY.match(key) or key == "vertex":
            raise ValueError(f"metadata key {key!r} must be alphanumeric/underscore and not 'vertex'")
        prefix = f"{FVDB_PLY_MAGIC}{key}"
        if isinstance(value, str):
            if "\n" in value or "\r" in value:
                raise ValueError(f"metadata string {key!r} must not contain a newline")
            comments.append(f"{prefix}|str|{value}")
        elif isinstance(value, (bool, np.bool_)):
            comments.append(f"{prefix}|int64|{int(value)}")
        elif isinstance(value, (int, np.integer)):
            comments.append(f"{prefix}|int64|{int(value)}")
        elif isinstance(value, (float, np.floating)):
            comments.append(f"{prefix}|double|{float(value)!r}")
        elif isinstance(value, (np.ndarray, torch.Tensor)):
            if not with_tensors:
                continue
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
            code = array.dtype.newbyteorder("=").str.lstrip("<>=|")
            if code not in _TENSOR_PLY_TYPES:
                raise ValueError(f"metadata tensor {key!r} has unsupported dtype {array.dtype}")
            shape = ",".join(str(s) for s in array.shape)
            comments.append(f"{prefix}|tensor|{array.ndim},{shape}")
            flat = np.empty(array.size, dtype=[("value", code)])
            flat["value"] = array.reshape(-1)
            elements.append(PlyElement.describe(flat, key))
        else:
            raise ValueError(f"metadata {key!r} has unsupported type {type(value).__name__}")
    return comments, elements
