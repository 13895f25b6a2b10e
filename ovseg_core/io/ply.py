"""3DGS PLY files: the INRIA layout (binary either endian or ASCII) and fVDB's flavour.

INRIA: ``x y z [nx ny nz] f_dc_0.. f_rest_0.. opacity scale_0..2 rot_0..3`` with logit
opacity, log scales, (w, x, y, z) rotations and ``f_rest`` stored channel-major (all
coefficients of channel 0, then channel 1, ...). fVDB writes the same properties in another
order, without normals, and adds ``comment fvdb_ply_af_8198767135<key>|<type>|<value>``
metadata, where tensors live in an extra element named after the key.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement, PlyParseError

from ovseg_core.errors import SceneFormatError
from ovseg_core.scene import GaussianScene

FVDB_PLY_MAGIC = "fvdb_ply_af_8198767135"
FVDB_VERSION_COMMENT = "fvdb_gs_ply_version fvdb_ply 1.0.0"

_CORE = ("x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
_NORMALS = ("nx", "ny", "nz")
_SH_PROPERTY = re.compile(r"^f_(dc|rest)_(\d+)$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_]+$")
_TENSOR_PLY_TYPES = {"f4": "f4", "f8": "f8", "i4": "i4", "u4": "u4", "i2": "i2", "u2": "u2", "i1": "i1", "u1": "u1"}


def read_ply(path: str | os.PathLike[str]) -> GaussianScene:
    """Read an INRIA or fVDB Gaussian PLY.

    Raises:
        SceneFormatError: the file is not a PLY, is truncated, lacks a required property,
            holds zero Gaussians, or is a SuperSplat compressed PLY (use ``load_scene``).
    """
    path = Path(path)
    ply = _read_plydata(path)
    names = [el.name for el in ply.elements]
    if "vertex" not in names:
        raise SceneFormatError(f"{path}: PLY has no 'vertex' element (elements: {names}); not a Gaussian-splat file")
    vertex = ply["vertex"]
    if vertex.count == 0:
        raise SceneFormatError(f"{path}: the PLY holds zero Gaussians")
    props = [p.name for p in vertex.properties]
    lists = [p.name for p in vertex.properties if hasattr(p, "len_dtype")]
    if lists:
        raise SceneFormatError(f"{path}: vertex has list properties {lists}; not a Gaussian-splat PLY")
    missing = [p for p in _CORE if p not in props]
    dc = sorted(int(m.group(2)) for p in props if (m := _SH_PROPERTY.match(p)) and m.group(1) == "dc")
    rest = sorted(int(m.group(2)) for p in props if (m := _SH_PROPERTY.match(p)) and m.group(1) == "rest")
    if not dc:
        missing.append("f_dc_0")
    if missing:
        kind = "a point cloud or mesh" if {"x", "y", "z"} <= set(props) else "not a Gaussian-splat PLY"
        raise SceneFormatError(f"{path}: missing required properties {missing} ({kind})")
    num_channels = len(dc)
    if dc != list(range(num_channels)) or rest != list(range(len(rest))):
        raise SceneFormatError(f"{path}: SH properties f_dc_*/f_rest_* are not numbered contiguously from 0")
    if len(rest) % num_channels or (len(rest) // num_channels) not in (0, 3, 8, 15, 24):
        raise SceneFormatError(
            f"{path}: {len(rest)} f_rest properties for {num_channels} channels is not an SH degree 0-4 layout"
        )
    data = vertex.data
    f32 = lambda name: np.asarray(data[name], dtype=np.float32)  # noqa: E731
    n = vertex.count
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
    # native byte order, so a big-endian file's extras compare equal to a little-endian one's
    extras = {
        p: np.asarray(data[p]).astype(data[p].dtype.newbyteorder("="), copy=True) for p in props if p not in known
    }
    metadata = _parse_fvdb_metadata(ply, path)
    extra_elements = [nm for nm in names if nm != "vertex" and nm not in metadata]
    if extra_elements:
        warnings.warn(f"{path}: ignoring PLY elements {extra_elements}", stacklevel=2)

    finite = (
        np.isfinite(means).all(1)
        & np.isfinite(log_scales).all(1)
        & np.isfinite(quats).all(1)
        & np.isfinite(logit_opacities)
        & np.isfinite(sh0).all((1, 2))
        & np.isfinite(shN).all((1, 2))
    )
    if not finite.all():
        dropped = int((~finite).sum())
        if dropped == n:
            raise SceneFormatError(f"{path}: all {n} Gaussians contain NaN or Inf values")
        warnings.warn(f"{path}: dropped {dropped} of {n} Gaussians with NaN/Inf values", stacklevel=2)
        means, log_scales, quats, logit_opacities, sh0, shN = (
            a[finite] for a in (means, log_scales, quats, logit_opacities, sh0, shN)
        )
        extras = {k: v[finite] for k, v in extras.items()}
    return GaussianScene(
        means=torch.from_numpy(np.ascontiguousarray(means)),
        quats=torch.from_numpy(normalize_quats_np(quats)),
        log_scales=torch.from_numpy(np.ascontiguousarray(log_scales)),
        logit_opacities=torch.from_numpy(np.ascontiguousarray(logit_opacities)),
        sh0=torch.from_numpy(np.ascontiguousarray(sh0)),
        shN=torch.from_numpy(np.ascontiguousarray(shN)),
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


def _read_plydata(path: Path) -> PlyData:
    if not path.exists():
        raise SceneFormatError(f"{path}: file not found")
    with open(path, "rb") as f:
        head = f.read(4)
        if head[:3] != b"ply":
            raise SceneFormatError(f"{path}: not a PLY file (does not start with 'ply')")
        f.seek(0)
        try:
            return PlyData.read(f)
        except PlyParseError as e:
            raise SceneFormatError(f"{path}: malformed or truncated PLY: {e}") from e
        except (ValueError, EOFError, UnicodeDecodeError, MemoryError) as e:
            raise SceneFormatError(f"{path}: malformed or truncated PLY: {e}") from e


def _parse_fvdb_metadata(ply: PlyData, path: Path) -> dict:
    metadata: dict = {}
    for comment in ply.comments:
        if not comment.startswith(FVDB_PLY_MAGIC):
            continue
        try:
            key, kind, value = comment[len(FVDB_PLY_MAGIC) :].split("|", 2)
        except ValueError:
            raise SceneFormatError(f"{path}: malformed fVDB metadata comment {comment!r}") from None
        if kind == "str":
            metadata[key] = value
        elif kind == "int64":
            metadata[key] = int(value)
        elif kind == "double":
            metadata[key] = float(value)
        elif kind == "tensor":
            dims = [int(v) for v in value.split(",") if v != ""]
            ndim, shape = dims[0], tuple(dims[1:])
            if len(shape) != ndim:
                raise SceneFormatError(f"{path}: fVDB tensor metadata {key!r} has a bad shape {value!r}")
            try:
                flat = np.asarray(ply[key].data["value"])
            except KeyError:
                raise SceneFormatError(
                    f"{path}: fVDB tensor metadata {key!r} has no element holding its values"
                ) from None
            if flat.size != int(np.prod(shape)):
                raise SceneFormatError(f"{path}: fVDB tensor metadata {key!r} holds {flat.size} values, shape {shape}")
            metadata[key] = flat.reshape(shape)
        else:
            raise SceneFormatError(f"{path}: unknown fVDB metadata type {kind!r} for {key!r}")
    return metadata


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
