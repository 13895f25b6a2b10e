"""Load any supported splat file by content; save atomically by extension.

Each format is one ``SceneFormat`` in ``SCENE_FORMATS``: a new format is its own reader/writer module
plus one entry here. Reading picks the first format whose ``sniff`` recognises the file's first
bytes, else (formats without a signature, such as ``.splat``) the one its name ends with.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from ovseg_core.errors import SceneFormatError, UsageError
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.io.checkpoint_file import looks_like_checkpoint, read_checkpoint
from ovseg_core.io.compressed_ply import decode_compressed_ply, is_compressed_ply
from ovseg_core.io.compressed_ply_writer import write_compressed_ply
from ovseg_core.io.ksplat_file import read_ksplat
from ovseg_core.io.ply import scene_from_ply_table, write_ply
from ovseg_core.io.ply_table import read_ply_table, read_regular_file
from ovseg_core.io.sog import read_sog
from ovseg_core.io.sog_files import ZIP_MAGIC, looks_like_sog_meta, parse_meta
from ovseg_core.io.splat_file import read_splat, write_splat
from ovseg_core.io.spz_file import looks_like_spz, read_spz, write_spz
from ovseg_core.scene import GaussianScene

SNIFF_BYTES = 4096
"""How much of a file ``sniff`` sees (enough for a gzip header and the first inflated bytes)."""


@dataclasses.dataclass(frozen=True)
class SceneFormat:
    """One splat file format: how to recognise, read and (optionally) write it."""

    name: str
    """Shown to users ("SPZ", "PLY", ...)."""
    suffixes: tuple[str, ...]
    """File name endings, lower case, the one ``save_scene`` writes first (``.compressed.ply`` may precede ``.ply``)."""
    read: Callable[[Path], GaussianScene]
    sniff: Callable[[bytes], bool] | None = None
    """Whether the first ``SNIFF_BYTES`` bytes are this format; None: no signature, chosen by suffix."""
    signature: str = ""
    """What ``sniff`` looks for, for the error when a file named like this format is not one."""
    write: Callable[[GaussianScene], bytes] | None = None
    """Encode a whole scene as the file's bytes; None: read only."""


def _read_ply(path: Path) -> GaussianScene:
    ply = read_ply_table(path)  # parsed once, then decoded by flavour
    return decode_compressed_ply(ply, str(path)) if is_compressed_ply(ply) else scene_from_ply_table(ply, path)


def _is_ply(head: bytes) -> bool:
    return head[:3] == b"ply"


def _is_sog_zip(head: bytes) -> bool:
    return head[:4] in ZIP_MAGIC and not looks_like_checkpoint(head)  # torch checkpoints are zips too


def _read_sog_meta(path: Path) -> GaussianScene:
    if not looks_like_sog_meta(parse_meta(read_regular_file(path, max_bytes=1 << 22), str(path))):
        raise SceneFormatError(f"{path}: a JSON file that is not a SOG meta.json (no means/quats/scales/sh0)")
    return read_sog(path)


SCENE_FORMATS: list[SceneFormat] = [
    SceneFormat("PLY", (".ply",), _read_ply, _is_ply, "does not start with 'ply'", write_ply),
    # read as a PLY (the flavour is in its header); the longer suffix picks the packed writer
    SceneFormat(
        "SuperSplat compressed PLY",
        (".compressed.ply",),
        _read_ply,
        _is_ply,
        "does not start with 'ply'",
        write_compressed_ply,
    ),  # fmt: skip
    SceneFormat("SPZ", (".spz",), read_spz, looks_like_spz, "no gzip-compressed or plain 'NGSP' header", write_spz),
    SceneFormat(".splat", (".splat",), read_splat, write=write_splat),
    SceneFormat(".ksplat (GaussianSplats3D)", (".ksplat",), read_ksplat),  # its header has no signature
    SceneFormat(
        "checkpoint (gsplat / fVDB Reality Capture)",
        (".pt", ".pth", ".ckpt"),
        read_checkpoint,
        looks_like_checkpoint,
        "not a torch checkpoint",
    ),
    SceneFormat("SOG", (".sog",), read_sog, _is_sog_zip, "not a zip archive"),
    SceneFormat("SOG meta.json", ("meta.json",), _read_sog_meta, lambda head: head.lstrip()[:1] == b"{", "not JSON"),
]
"""Every format, tried in order; see ``SceneFormat``."""


def format_for_name(path: str | os.PathLike[str]) -> SceneFormat | None:
    """The format whose longest suffix ends ``path``'s name (case-insensitive), or None."""
    name = Path(path).name.lower()
    matches = [(len(s), f) for f in SCENE_FORMATS for s in f.suffixes if name.endswith(s)]
    return max(matches, key=lambda m: m[0])[1] if matches else None


def writable_suffixes() -> list[str]:
    """The extensions ``save_scene`` writes, in registry order."""
    return [f.suffixes[0] for f in SCENE_FORMATS if f.write is not None]


def load_scene(path: str | os.PathLike[str]) -> GaussianScene:
    """Read a Gaussian scene from any format in ``SCENE_FORMATS`` (INRIA/fVDB PLY, SuperSplat compressed
    PLY, ``.spz``, antimatter15 ``.splat``, mkkellogg ``.ksplat``, gsplat and fVDB Reality Capture checkpoints, PlayCanvas SOG v2:
    a ``.sog`` zip, an unbundled ``meta.json`` or a folder holding one).

    Raises:
        SceneFormatError: naming the file and the problem (missing, not a regular file, truncated,
            malformed, a mesh, zero Gaussians, ...).
    """
    path = Path(path)
    if path.is_dir() and (path / "meta.json").is_file():  # an unbundled SOG's folder
        return read_sog(path)
    head = read_regular_file(path, max_bytes=SNIFF_BYTES)[:SNIFF_BYTES]
    for fmt in SCENE_FORMATS:
        if fmt.sniff is not None and fmt.sniff(head):
            return fmt.read(path)
    named = format_for_name(path)
    if named is not None and named.sniff is None:
        return named.read(path)
    if named is not None:
        raise SceneFormatError(f"{path}: not a {named.name} file ({named.signature})")
    known = ", ".join(s for f in SCENE_FORMATS for s in f.suffixes)
    raise SceneFormatError(f"{path}: unknown scene format (ovseg reads {known})")


def encode_scene(scene: GaussianScene, path: str | os.PathLike[str], **options: object) -> bytes:
    """The bytes ``save_scene`` would write to ``path`` (format by extension; options go to the writer)."""
    fmt = format_for_name(path)
    if fmt is None or fmt.write is None:
        raise UsageError(f"{path}: cannot save a scene as {Path(path).suffix!r}; use {', '.join(writable_suffixes())}")
    return fmt.write(scene, **options)  # type: ignore[call-arg]


def save_scene(scene: GaussianScene, path: str | os.PathLike[str], **options: object) -> Path:
    """Write ``scene`` atomically in the format its name asks for: ``.compressed.ply`` SuperSplat's packed
    layout, ``.ply`` the INRIA layout (options go to ``write_ply``), ``.spz`` (version 3) or ``.splat``."""
    return atomic_write_bytes(path, encode_scene(scene, path, **options))
