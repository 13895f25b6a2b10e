"""Niantic ``.spz`` (Scaniverse, PlayCanvas, splat-transform): read versions 2-4, write version 3.

Versions 2 and 3 are one gzip stream of a 16-byte header (magic "NGSP", version, point count, SH degree,
fractional bits, flags, reserved) and the column blocks of spz_codec.py; version 4 is a plain 32-byte
header (adding a stream count and a table-of-contents offset) followed by one zstd stream per block.

Allocation is bounded by the header before anything is inflated: the point count must fit what the
compressed bytes could hold (deflate cannot expand more than 1032:1; the reference's own bound for
zstd is 1024:1), and inflation stops at the size the header promises, so a truncated body, a lying
header or a decompression bomb is refused after reading only what is really there.

Axes: the reference stores RUB only when its caller names a coordinate system; its default, its
PLY converter and splat-transform all store the file's own axes unchanged. ovseg does the same, so a
PLY converted to .spz by either tool decodes here to the PLY's Gaussians.
"""

from __future__ import annotations

import gzip
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from ovseg_core.errors import SceneFormatError, UsageError
from ovseg_core.io.finite_rows import finite_rows
from ovseg_core.io.ply import normalize_quats_np
from ovseg_core.io.ply_table import read_regular_file
from ovseg_core.io.spz_codec import SpzColumns, block_widths, decode_columns, encode_columns
from ovseg_core.scene import GaussianScene

MAGIC = 0x5053474E  # "NGSP" little-endian
WRITE_VERSION = 3
"""Version written: gzip (stdlib only) and smallest-three rotations; the reference loader and splat-transform read it,
and readers that predate version 4 (zstd) do too."""
MAX_EXPANSION = 1032
"""Most bytes one compressed byte can inflate to (deflate's limit; the reference allows zstd 1024)."""
MAX_SH_DEGREE = 3
MAX_TRAILER = 1 << 20
"""Most bytes inflated after the Gaussians (extension records are a few bytes) before the stream must end."""
_LEGACY_HEADER = struct.Struct("<IIIBBBB")  # magic, version, points, sh degree, fractional bits, flags, reserved
_V4_HEADER = struct.Struct("<IIIBBBBI12x")  # ... flags, stream count, table-of-contents offset, reserved
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def looks_like_spz(head: bytes) -> bool:
    """Whether the first bytes of a file are an SPZ header: plain (version 4) or inside gzip (2, 3)."""
    if head[:4] == MAGIC.to_bytes(4, "little"):
        return True
    if head[:2] != _GZIP_MAGIC:
        return False
    try:
        return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, 4) == MAGIC.to_bytes(4, "little")
    except zlib.error:
        return False


def read_spz(path: str | os.PathLike[str]) -> GaussianScene:
    path = Path(path)
    raw = read_regular_file(path)
    if raw[:2] == _GZIP_MAGIC:
        cols, fractional_bits = _read_legacy(raw, path)
    elif raw[:4] == MAGIC.to_bytes(4, "little"):
        cols, fractional_bits = _read_v4(raw, path)
    else:
        raise SceneFormatError(f"{path}: not an SPZ file (neither gzip data nor an 'NGSP' header)")
    with np.errstate(all="ignore"):
        columns = decode_columns(cols, fractional_bits)
    columns["quats"] = normalize_quats_np(columns["quats"])
    keep = finite_rows(columns, path, len(cols.positions))
    if keep is not None:
        columns = {k: v[keep] for k, v in columns.items()}
    return GaussianScene(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in columns.items()})


def _check_header(path: Path, version: int, count: int, degree: int, fractional_bits: int, compressed: int) -> list:
    """Block widths for a header, or SceneFormatError before anything the size of the body is allocated."""
    if version not in (2, 3, 4):
        raise SceneFormatError(f"{path}: SPZ version {version} is not supported (ovseg reads versions 2, 3 and 4)")
    if degree > MAX_SH_DEGREE:
        raise SceneFormatError(f"{path}: SPZ SH degree {degree} is not supported (ovseg renders up to degree 3)")
    if fractional_bits > 23:
        raise SceneFormatError(f"{path}: SPZ header has {fractional_bits} fractional bits (24-bit positions hold 23)")
    if count == 0:
        raise SceneFormatError(f"{path}: the SPZ file holds zero Gaussians")
    widths = block_widths(version, (degree + 1) ** 2 - 1)
    needed = count * sum(widths)
    if count >= 2**31 or needed > compressed * MAX_EXPANSION:
        raise SceneFormatError(
            f"{path}: SPZ header claims {count} Gaussians ({needed} bytes), more than {compressed} compressed "
            "bytes can hold (truncated or corrupt file)"
        )
    return widths


def _split(body: bytes | bytearray, count: int, widths: list[int]) -> SpzColumns:
    blocks, offset = [], 0
    for width in widths:
        blocks.append(np.frombuffer(body, np.uint8, count * width, offset).reshape(count, width))
        offset += count * width
    return SpzColumns(*blocks)


def _read_legacy(raw: bytes, path: Path) -> tuple[SpzColumns, int]:
    stream = _GzipStream(raw, path)
    header = stream.read(_LEGACY_HEADER.size)
    if len(header) < _LEGACY_HEADER.size:
        raise SceneFormatError(f"{path}: truncated SPZ file (gzip stream ends inside the 16-byte header)")
    magic, version, count, degree, fractional_bits, _flags, _ = _LEGACY_HEADER.unpack(header)
    if magic != MAGIC:
        raise SceneFormatError(f"{path}: gzip data but not an SPZ file (no 'NGSP' header)")
    if version == 4:
        raise SceneFormatError(f"{path}: SPZ version 4 inside gzip (version 4 files are not gzip-compressed)")
    widths = _check_header(path, version, count, degree, fractional_bits, len(raw))
    needed = count * sum(widths)
    body = stream.read(needed)
    if len(body) < needed:
        raise SceneFormatError(
            f"{path}: truncated SPZ file: the header promises {needed} bytes of Gaussians, the stream holds {len(body)}"
        )
    stream.read(MAX_TRAILER)  # extensions, if any: the stream must end soon after, its checksum verified
    if not stream.inflater.eof:
        if stream.exhausted():
            raise SceneFormatError(f"{path}: SPZ gzip stream is truncated (it stops before its end and checksum)")
        raise SceneFormatError(
            f"{path}: SPZ gzip stream does not end within {MAX_TRAILER} bytes after the {needed} bytes "
            "the header promises (corrupt, or a decompression bomb)"
        )
    return _split(body, count, widths), fractional_bits


class _GzipStream:
    """Inflates a gzip member on demand, never more than asked for."""

    def __init__(self, raw: bytes, path: Path) -> None:
        self.raw, self.path, self.offset = raw, path, 0
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def exhausted(self) -> bool:
        """Whether every compressed byte has been fed to the inflater."""
        return not self.inflater.unconsumed_tail and self.offset >= len(self.raw)

    def read(self, limit: int) -> bytearray:
        """The next ``limit`` bytes, or fewer where the stream ends."""
        out = bytearray()
        try:
            while len(out) < limit and not self.inflater.eof:
                if self.inflater.unconsumed_tail:
                    data = self.inflater.unconsumed_tail
                elif self.offset < len(self.raw):
                    data = self.raw[self.offset : self.offset + _CHUNK]
                    self.offset += _CHUNK
                else:
                    break
                out += self.inflater.decompress(data, limit - len(out))
        except zlib.error as e:
            raise SceneFormatError(f"{self.path}: corrupt SPZ gzip data ({e})") from None
        return out


def _read_v4(raw: bytes, path: Path) -> tuple[SpzColumns, int]:
    if len(raw) < _V4_HEADER.size:
        raise SceneFormatError(f"{path}: truncated SPZ file (shorter than its 32-byte header)")
    _, version, count, degree, fractional_bits, _flags, streams, toc = _V4_HEADER.unpack_from(raw)
    if version < 4:
        raise SceneFormatError(f"{path}: SPZ version {version} must be gzip-compressed, this file is not")
    widths = _check_header(path, version, count, degree, fractional_bits, len(raw))
    sizes = [count * w for w in widths if w]  # the writer skips empty blocks (no SH at degree 0)
    if streams != len(sizes) or not _V4_HEADER.size <= toc <= len(raw) - 16 * streams:
        raise SceneFormatError(f"{path}: SPZ table of contents is malformed ({streams} streams at offset {toc})")
    entries = np.frombuffer(raw, "<u8", 2 * streams, toc).reshape(streams, 2)
    offset, blocks = toc + 16 * streams, []
    for (packed, unpacked), size in zip(entries.tolist(), sizes, strict=True):
        if unpacked != size or packed > len(raw) - offset:
            raise SceneFormatError(
                f"{path}: SPZ stream {len(blocks)} is malformed or truncated "
                f"({packed} bytes unpacking to {unpacked}; expected {size})"
            )
        blocks.append(_unzstd(raw[offset : offset + packed], size, path))
        offset += packed
    if not widths[-1]:
        blocks.append(b"")
    return SpzColumns(
        *(np.frombuffer(b, np.uint8).reshape(count, w) for b, w in zip(blocks, widths, strict=True))
    ), fractional_bits


def _unzstd(data: bytes, size: int, path: Path) -> bytearray:
    import zstandard  # a dependency of viser, so always present

    out = bytearray(size)
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data)
        got = 0
        while got < size and (n := reader.readinto(memoryview(out)[got:])):
            got += n
        extra = reader.read(1)
    except zstandard.ZstdError as e:
        raise SceneFormatError(f"{path}: corrupt SPZ zstd stream ({e})") from None
    if got < size or extra:
        raise SceneFormatError(
            f"{path}: SPZ zstd stream does not unpack to the {size} bytes its table of contents says"
        )
    return out


def write_spz(scene: GaussianScene, version: int = WRITE_VERSION) -> bytes:
    """Encode as ``.spz`` (gzip, version 2 or 3; lossy: 24-bit positions, 8-bit everything else).

    Positions get 12 fractional bits (0.25 mm at metre scale) like the reference, fewer when a centre
    lies beyond +-2048 so that it still fits in 24 bits. Rows with NaN/Inf values are dropped.
    """
    if version not in (2, 3):
        raise UsageError(f"ovseg writes SPZ versions 2 and 3, not {version}")
    if scene.num_channels != 3:
        raise UsageError(f".spz stores RGB; the scene has {scene.num_channels} channels")
    if scene.sh_degree > MAX_SH_DEGREE:
        raise UsageError(f".spz readers take SH degree up to {MAX_SH_DEGREE}; the scene has {scene.sh_degree}")
    arrays = {k: getattr(scene, k).detach().cpu().numpy() for k in ("means", "quats", "log_scales", "logit_opacities")}
    arrays |= {"sh0": scene.sh0.detach().cpu().numpy(), "shN": scene.shN.detach().cpu().numpy()}
    finite = np.ones(scene.num_gaussians, dtype=bool)
    for values in arrays.values():
        finite &= np.isfinite(values.reshape(len(finite), -1)).all(1)
    if not finite.any():
        raise UsageError("cannot write an SPZ file: no Gaussian has finite values")
    if not finite.all():
        warnings.warn(f"dropped {int((~finite).sum())} Gaussians with NaN/Inf values on save", stacklevel=3)
    arrays = {k: v[finite] for k, v in arrays.items()}
    extent = float(np.abs(arrays["means"]).max())
    fractional_bits = 12
    while fractional_bits > 0 and extent * 2**fractional_bits >= 2**23 - 1:
        fractional_bits -= 1
    if extent * 2**fractional_bits >= 2**23 - 1:
        raise UsageError(f"cannot write an SPZ file: a centre lies at {extent:g}, beyond SPZ's 24-bit range")
    cols = encode_columns(**arrays, version=version, fractional_bits=fractional_bits)
    header = _LEGACY_HEADER.pack(MAGIC, version, len(cols.positions), scene.sh_degree, fractional_bits, 0, 0)
    body = b"".join([header, *(block.tobytes() for block in cols.blocks())])
    return gzip.compress(body, compresslevel=6, mtime=0)
