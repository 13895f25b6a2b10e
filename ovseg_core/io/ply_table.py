"""A bounded PLY parser: the header is checked against the file's size before anything is allocated.

Gaussian-splat PLYs (INRIA, fVDB, SuperSplat compressed) only hold scalar properties, so list
properties are refused; element counts must fit in the bytes the file actually has; the header is
at most ``MAX_HEADER_BYTES``; only regular files are opened (a FIFO or device would block or never
end). Every problem is a ``SceneFormatError`` naming the file. Writing stays with plyfile.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import warnings
from pathlib import Path

import numpy as np

from ovseg_core.errors import SceneFormatError

MAX_HEADER_BYTES = 1 << 20
"""Longest accepted header (1 MiB): real splat headers are a few KB, fVDB metadata comments included."""

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}


@dataclasses.dataclass
class PlyTable:
    """A parsed PLY: each element as a structured array ``[count]`` in native byte order."""

    elements: dict[str, np.ndarray]
    """Element name -> structured array, in file order; field names are the property names."""
    comments: list[str]
    text: bool
    """Whether the file was ASCII."""

    def properties(self, element: str) -> list[str]:
        names = self.elements[element].dtype.names
        return list(names) if names else []


def read_ply_table(path: str | os.PathLike[str]) -> PlyTable:
    """Parse the PLY at ``path`` (binary either endian or ASCII, scalar properties only)."""
    path = Path(path)
    with _open_regular_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(MAX_HEADER_BYTES + 16)
        if not head.startswith(b"ply"):
            raise SceneFormatError(f"{path}: not a PLY file (does not start with 'ply')")
        header_end = head.find(b"\nend_header")
        line_end = head.find(b"\n", header_end + 1) if header_end >= 0 else -1
        if header_end < 0 or line_end < 0 or head[header_end + 11 : line_end].strip() != b"":
            what = f"longer than {MAX_HEADER_BYTES} bytes" if size > MAX_HEADER_BYTES else "no 'end_header' line"
            raise SceneFormatError(f"{path}: malformed PLY header ({what})")
        try:
            header = head[:header_end].decode("ascii")
        except UnicodeDecodeError:
            raise SceneFormatError(f"{path}: PLY header is not ASCII text") from None
        byte_order, specs, comments = _parse_header(header, path)
        body_start = line_end + 1
        body_size = size - body_start
        if byte_order is None:
            f.seek(body_start)
            return PlyTable(_read_ascii(f.read(), specs, path), comments, text=True)
        dtypes = [np.dtype([(p, byte_order + t) for p, t in props]) for _, _, props in specs]
        needed = sum(count * dt.itemsize for (_, count, _), dt in zip(specs, dtypes, strict=True))
        if needed > body_size:
            raise SceneFormatError(
                f"{path}: truncated PLY: the header promises {needed} bytes of data, the file has {body_size}"
            )
        f.seek(body_start)
        body = f.read(needed)
    if len(body) != needed:
        raise SceneFormatError(f"{path}: truncated PLY (the file shrank while being read)")
    elements: dict[str, np.ndarray] = {}
    offset = 0
    for (name, count, _), dt in zip(specs, dtypes, strict=True):
        table = np.frombuffer(body, dtype=dt, count=count, offset=offset)
        offset += count * dt.itemsize
        elements[name] = table.astype(dt.newbyteorder("="))  # a native, writable copy
    return PlyTable(elements, comments, text=False)


class _open_regular_file:  # noqa: N801 (used as a context manager like open())
    """``open(path, "rb")`` that refuses directories, FIFOs, sockets and devices without blocking."""

    def __init__(self, path: Path) -> None:
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise SceneFormatError(f"{path}: file not found") from None
        except IsADirectoryError:
            raise SceneFormatError(f"{path}: is a directory, expected a .ply or .splat file") from None
        except OSError as e:
            raise SceneFormatError(f"{path}: cannot open ({e.strerror})") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            if stat.S_ISDIR(mode):
                raise SceneFormatError(f"{path}: is a directory, expected a .ply or .splat file")
            raise SceneFormatError(f"{path}: not a regular file (a FIFO, socket or device); refusing to read it")
        self.path = path
        self.file = os.fdopen(fd, "rb")

    def __enter__(self):  # noqa: ANN204
        return self.file

    def __exit__(self, kind, value, tb) -> None:  # noqa: ANN001
        self.file.close()
        if isinstance(value, OSError):
            raise SceneFormatError(f"{self.path}: cannot read ({value.strerror or value})") from value


def read_regular_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The bytes of ``path`` (at most ``max_bytes + 1`` read); ``SceneFormatError`` when it is missing,
    a directory, a FIFO or a device."""
    with _open_regular_file(Path(path)) as f:
        return f.read() if max_bytes is None else f.read(max_bytes + 1)


def _parse_header(header: str, path: Path) -> tuple[str | None, list[tuple[str, int, list[tuple[str, str]]]], list]:
    lines = [ln.rstrip("\r") for ln in header.split("\n")]
    if lines[0].strip() != "ply":
        raise SceneFormatError(f"{path}: not a PLY file (first line is not 'ply')")
    byte_order: str | None = None
    seen_format = False
    specs: list[tuple[str, int, list[tuple[str, str]]]] = []
    comments: list[str] = []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words:
            continue
        keyword = words[0]
        where = f"{path}: PLY header line {number}"
        if keyword == "comment":
            comments.append(line.split("comment", 1)[1].removeprefix(" "))
        elif keyword == "obj_info":
            continue
        elif keyword == "format":
            if seen_format or len(words) != 3 or words[1] not in _FORMATS or words[2] != "1.0":
                raise SceneFormatError(f"{where}: bad format line {line[:80]!r}")
            byte_order, seen_format = _FORMATS[words[1]], True
        elif keyword == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise SceneFormatError(f"{where}: bad element line {line[:80]!r} (expected 'element NAME COUNT')")
            if any(name == words[1] for name, _, _ in specs):
                raise SceneFormatError(f"{where}: element {words[1]!r} is declared twice")
            specs.append((words[1], int(words[2]), []))
        elif keyword == "property":
            if not specs:
                raise SceneFormatError(f"{where}: property before any element")
            element, _, props = specs[-1]
            if len(words) >= 2 and words[1] == "list":
                raise SceneFormatError(
                    f"{path}: element {element!r} has a list property ({line[:80]!r}); "
                    "Gaussian-splat PLYs hold scalar properties only (is this a mesh?)"
                )
            if len(words) != 3 or words[1] not in _TYPES:
                raise SceneFormatError(f"{where}: bad property line {line[:80]!r}")
            if any(name == words[2] for name, _ in props):
                raise SceneFormatError(f"{where}: property {words[2]!r} of {element!r} is declared twice")
            props.append((words[2], _TYPES[words[1]]))
        else:
            raise SceneFormatError(f"{where}: unknown keyword {keyword[:40]!r}")
    if not seen_format:
        raise SceneFormatError(f"{path}: PLY header has no 'format' line")
    for name, count, props in specs:
        if count and not props:
            raise SceneFormatError(f"{path}: element {name!r} has {count} rows but no properties")
    return byte_order, specs, comments


def _read_ascii(body: bytes, specs: list, path: Path) -> dict[str, np.ndarray]:
    total = sum(count * len(props) for _, count, props in specs)
    # every value takes at least one character and one separator: refuse impossible counts before parsing
    if total > (len(body) + 1) // 2:
        raise SceneFormatError(f"{path}: truncated PLY: the header promises {total} values, the text is too short")
    text = body.decode("latin-1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.float64, sep=" ")  # noqa: NPY201 (text mode, not deprecated)
        except (ValueError, DeprecationWarning):
            raise SceneFormatError(f"{path}: malformed ASCII PLY data (a value is not a number)") from None
    if values.size < total:
        raise SceneFormatError(f"{path}: truncated PLY: the header promises {total} values, the file has {values.size}")
    elements: dict[str, np.ndarray] = {}
    offset = 0
    for name, count, props in specs:
        block = values[offset : offset + count * len(props)].reshape(count, len(props))
        offset += count * len(props)
        table = np.empty(count, dtype=[(p, t) for p, t in props])
        for column, (prop, code) in enumerate(props):
            table[prop] = _ascii_column(block[:, column], code, f"{path}: property {prop!r} of {name!r}")
        elements[name] = table
    return elements


def _ascii_column(values: np.ndarray, code: str, where: str) -> np.ndarray:
    if code[0] == "f":
        with np.errstate(over="ignore"):  # a double beyond float32 becomes inf and is dropped as non-finite later
            return values.astype(code)
    info = np.iinfo(code)
    if not (np.isfinite(values).all() and (values == np.round(values)).all()):
        raise SceneFormatError(f"{where}: integer property holds a non-integer value")
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise SceneFormatError(f"{where}: value out of range for {np.dtype(code).name}")
    return values.astype(code)
