"""Load any supported splat file by content; save atomically by name."""

from __future__ import annotations

import os
from pathlib import Path

from ovseg_core.errors import SceneFormatError, UsageError
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.io.compressed_ply import decode_compressed_ply, is_compressed_ply
from ovseg_core.io.compressed_ply_writer import write_compressed_ply
from ovseg_core.io.ply import scene_from_ply_table, write_ply
from ovseg_core.io.ply_table import read_ply_table, read_regular_file
from ovseg_core.io.sog import read_sog
from ovseg_core.io.sog_files import ZIP_MAGIC, looks_like_sog_meta, parse_meta
from ovseg_core.io.splat_file import read_splat, write_splat
from ovseg_core.scene import GaussianScene

SAVE_SUFFIXES = (".compressed.ply", ".ply", ".splat")
"""File name endings ``save_scene`` writes, longest first (a name picks the first it ends with)."""


def load_scene(path: str | os.PathLike[str]) -> GaussianScene:
    """Read a Gaussian scene: INRIA/fVDB PLY, SuperSplat compressed PLY, antimatter15 ``.splat`` or
    PlayCanvas SOG v2 (a ``.sog`` zip, an unbundled ``meta.json``, or a folder holding ``meta.json``).

    Raises:
        SceneFormatError: naming the file and the problem (missing, not a regular file, truncated,
            malformed, a mesh, zero Gaussians, ...).
    """
    path = Path(path)
    if path.is_dir() and (path / "meta.json").is_file():
        return read_sog(path)
    head = read_regular_file(path, max_bytes=63)
    if head[:3] == b"ply":
        ply = read_ply_table(path)  # parsed once, then decoded by flavour
        if is_compressed_ply(ply):
            return decode_compressed_ply(ply, str(path))
        return scene_from_ply_table(ply, path)
    if head[:4] in ZIP_MAGIC:
        return read_sog(path)
    if head.lstrip()[:1] == b"{":
        if looks_like_sog_meta(parse_meta(read_regular_file(path, max_bytes=1 << 22), str(path))):
            return read_sog(path)
        raise SceneFormatError(f"{path}: a JSON file that is not a SOG meta.json (no means/quats/scales/sh0)")
    if path.suffix.lower() == ".splat":
        return read_splat(path)
    if path.suffix.lower() == ".ply":
        raise SceneFormatError(f"{path}: not a PLY file (does not start with 'ply')")
    raise SceneFormatError(f"{path}: unknown scene format (expected a PLY, .splat, .sog or SOG meta.json file)")


def encode_scene(scene: GaussianScene, path: str | os.PathLike[str], **ply_options: object) -> bytes:
    """The bytes ``save_scene`` writes for ``path``'s name: ``.compressed.ply`` SuperSplat's packed
    layout, ``.ply`` the INRIA layout (options go to ``write_ply``), ``.splat`` antimatter15's records."""
    name = Path(path).name.lower()
    if name.endswith(".compressed.ply"):
        return write_compressed_ply(scene)
    if name.endswith(".ply"):
        return write_ply(scene, **ply_options)  # type: ignore[arg-type]
    if name.endswith(".splat"):
        return write_splat(scene)
    raise UsageError(f"{path}: cannot save a scene as {Path(path).suffix!r}; use {', '.join(SAVE_SUFFIXES)}")


def save_scene(scene: GaussianScene, path: str | os.PathLike[str], **ply_options: object) -> Path:
    """Write ``scene`` atomically in the format ``path``'s name asks for (see ``encode_scene``)."""
    return atomic_write_bytes(path, encode_scene(scene, path, **ply_options))
