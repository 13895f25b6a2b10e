"""Load any supported splat file by content; save atomically by extension."""

from __future__ import annotations

import os
from pathlib import Path

from ovseg_core.errors import SceneFormatError, UsageError
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.io.compressed_ply import decode_compressed_ply, is_compressed_ply
from ovseg_core.io.ply import scene_from_ply_table, write_ply
from ovseg_core.io.ply_table import read_ply_table, read_regular_file
from ovseg_core.io.splat_file import read_splat, write_splat
from ovseg_core.scene import GaussianScene


def load_scene(path: str | os.PathLike[str]) -> GaussianScene:
    """Read a Gaussian scene: INRIA/fVDB PLY, SuperSplat compressed PLY or antimatter15 ``.splat``.

    Raises:
        SceneFormatError: naming the file and the problem (missing, not a regular file, truncated,
            malformed, a mesh, zero Gaussians, ...).
    """
    path = Path(path)
    magic = read_regular_file(path, max_bytes=2)[:3]
    if magic == b"ply":
        ply = read_ply_table(path)  # parsed once, then decoded by flavour
        if is_compressed_ply(ply):
            return decode_compressed_ply(ply, str(path))
        return scene_from_ply_table(ply, path)
    if path.suffix.lower() == ".splat":
        return read_splat(path)
    if path.suffix.lower() == ".ply":
        raise SceneFormatError(f"{path}: not a PLY file (does not start with 'ply')")
    raise SceneFormatError(f"{path}: unknown scene format (expected a PLY file or a .splat file)")


def save_scene(scene: GaussianScene, path: str | os.PathLike[str], **ply_options: object) -> Path:
    """Write ``scene`` atomically: ``.ply`` in the INRIA layout (options go to ``write_ply``) or ``.splat``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ply":
        data = write_ply(scene, **ply_options)  # type: ignore[arg-type]
    elif suffix == ".splat":
        data = write_splat(scene)
    else:
        raise UsageError(f"{path}: cannot save a scene as {suffix!r}; use .ply or .splat")
    return atomic_write_bytes(path, data)
