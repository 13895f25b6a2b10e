"""Where a SOG's files come from: a bundled ``.sog`` (a zip of ``meta.json`` + WebP images) or a folder
holding an unbundled ``meta.json`` beside its images. Every read is bounded, and only plain file names
(no folders, no ``..``) are looked up, so a hostile archive or meta.json cannot reach other files or
inflate without limit."""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from ovseg_core.errors import SceneFormatError
from ovseg_core.io.ply_table import read_regular_file

MAX_META_BYTES = 4 << 20
"""Largest accepted meta.json (4 MiB): a real one is a few KB (three 256-entry codebooks)."""
MAX_IMAGE_BYTES = 1 << 30
"""Largest accepted image file or zip entry (1 GiB): a 16383x16383 lossless WebP stays below it."""
MAX_ZIP_ENTRIES = 64
"""A SOG zip holds meta.json and at most seven images; more entries is not a SOG."""
MAX_INFLATION = 64
"""An entry may decompress to at most this many times its stored size (plus 1 MiB): WebP images hardly
deflate further, so a larger ratio is a zip bomb."""
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError,
    RuntimeError, OverflowError, struct.error, zlib.error,
)  # fmt: skip
"""What zipfile raises on a damaged archive (bad deflate data, unknown versions, encryption, ...)."""


def plain_name(name: object, path: str) -> str:
    """``name`` if it is a bare file name (what splat-transform writes), else ``SceneFormatError``."""
    if not isinstance(name, str) or not name or len(name) > 255:
        raise SceneFormatError(f"{path}: SOG file name {str(name)[:80]!r} is not a file name")
    if "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise SceneFormatError(f"{path}: SOG file name {name[:80]!r} is not a plain file name (no folders allowed)")
    return name


def parse_meta(raw: bytes, path: str) -> dict[str, Any]:
    if len(raw) > MAX_META_BYTES:
        raise SceneFormatError(f"{path}: meta.json is larger than {MAX_META_BYTES} bytes; not a SOG meta.json")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SceneFormatError(f"{path}: meta.json is not valid JSON ({str(e)[:120]})") from None
    if not isinstance(meta, dict):
        raise SceneFormatError(f"{path}: meta.json is not a JSON object")
    return meta


def looks_like_sog_meta(meta: dict[str, Any]) -> bool:
    """Whether a JSON object has SOG's structure (``means``, ``quats``, ``scales``, ``sh0``)."""
    return all(isinstance(meta.get(key), dict) for key in ("means", "quats", "scales", "sh0"))


class SogFolder:
    """An unbundled SOG: ``meta.json`` (any name) and images in the same folder."""

    def __init__(self, meta_path: Path) -> None:
        self.path = str(meta_path)
        self.folder = meta_path.parent
        self.meta = parse_meta(read_regular_file(meta_path, max_bytes=MAX_META_BYTES), self.path)

    def read(self, name: str) -> bytes:
        file = self.folder / plain_name(name, self.path)
        try:
            data = read_regular_file(file, max_bytes=MAX_IMAGE_BYTES)
        except SceneFormatError as e:
            raise SceneFormatError(f"{self.path}: SOG image {name!r}: {e}") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise SceneFormatError(f"{self.path}: SOG image {name!r} is larger than {MAX_IMAGE_BYTES} bytes")
        return data

    def close(self) -> None:
        pass


class SogZip:
    """A bundled ``.sog``: the entries are read from the archive, never extracted."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        read_regular_file(path, max_bytes=0)  # missing, directory, FIFO: the common one-line errors
        try:
            self.zip = zipfile.ZipFile(path)
        except _ZIP_ERRORS as e:
            raise SceneFormatError(f"{path}: not a readable zip archive ({str(e)[:120]})") from None
        try:
            infos = self.zip.infolist()
            if len(infos) > MAX_ZIP_ENTRIES:
                raise SceneFormatError(f"{path}: zip has {len(infos)} entries; a SOG holds at most {MAX_ZIP_ENTRIES}")
            self.entries: dict[str, zipfile.ZipInfo] = {}
            for info in infos:
                name = info.filename
                if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name:
                    raise SceneFormatError(f"{path}: zip entry name {name[:80]!r} points outside the archive")
                self.entries[name] = info
            if "meta.json" not in self.entries:
                raise SceneFormatError(f"{path}: a zip archive without meta.json; not a SOG file")
            self.meta = parse_meta(self._read("meta.json", MAX_META_BYTES), self.path)
        except BaseException:
            self.zip.close()
            raise

    def read(self, name: str) -> bytes:
        name = plain_name(name, self.path)
        if name not in self.entries:
            raise SceneFormatError(f"{self.path}: SOG image {name!r} is not in the archive")
        return self._read(name, MAX_IMAGE_BYTES)

    def _read(self, name: str, limit: int) -> bytes:
        info = self.entries[name]
        cap = min(limit, MAX_INFLATION * info.compress_size + (1 << 20))
        if info.file_size > cap:
            raise SceneFormatError(
                f"{self.path}: zip entry {name!r} claims {info.file_size} bytes (limit {cap}); refusing to inflate it"
            )
        try:
            with self.zip.open(info) as f:
                data = f.read(cap + 1)  # never trust the declared size alone
        except _ZIP_ERRORS as e:
            raise SceneFormatError(f"{self.path}: zip entry {name!r} cannot be read ({str(e)[:120]})") from None
        if len(data) > cap:
            raise SceneFormatError(f"{self.path}: zip entry {name!r} inflates past {cap} bytes; refusing it")
        return data

    def close(self) -> None:
        self.zip.close()


def open_sog(path: str | os.PathLike[str]) -> SogFolder | SogZip:
    """The SOG at ``path``: a ``.sog`` zip, a ``meta.json`` or a folder holding ``meta.json``."""
    path = Path(path)
    if path.is_dir() and (path / "meta.json").is_file():
        return SogFolder(path / "meta.json")
    if read_regular_file(path, max_bytes=3)[:4] in ZIP_MAGIC:
        return SogZip(path)
    return SogFolder(path)
