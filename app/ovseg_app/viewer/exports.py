"""What a tab exports: the selection or the prompt's answer (or their complements) as a splat file
(a 3DGS PLY by default, or any format ``save_scene`` writes: ``EXPORT_FORMATS``), and file naming in
the output folder (sanitised, confined to it, never over an existing file)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ovseg_core.errors import UsageError
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.io.ply import write_ply
from ovseg_core.io.scene_file import SCENE_FORMATS, encode_scene

if TYPE_CHECKING:
    from ovseg_app.viewer.session import ViewerSession

ExportKind = Literal["selection", "prompt", "selection-complement", "prompt-complement"]
EXPORT_KINDS: tuple[str, ...] = ("selection", "prompt", "selection-complement", "prompt-complement")
_SAVE_LOCK = threading.Lock()
EXPORT_FORMATS: dict[str, str] = {f.name: f.suffixes[0] for f in SCENE_FORMATS if f.write is not None}
"""Export format name -> file extension: every format the scene registry can write (PLY first)."""


def export_mask(session: ViewerSession, kind: str) -> np.ndarray:
    """``[N]`` bool: the Gaussians ``kind`` exports (hidden ones never)."""
    if kind not in EXPORT_KINDS:
        raise UsageError(f"unknown export {kind!r}; choose one of {', '.join(EXPORT_KINDS)}")
    st = session.state
    base = st.selection if kind.startswith("selection") else session.prompt_selection()
    return ~base & ~st.hidden if kind.endswith("complement") else base & ~st.hidden


def export_ply(session: ViewerSession, kind: str) -> bytes:
    return export_file(session, kind, ".ply")


def export_file(session: ViewerSession, kind: str, suffix: str) -> bytes:
    """The Gaussians ``kind`` exports, encoded as the format of ``suffix`` (one of ``EXPORT_FORMATS``)."""
    if suffix not in EXPORT_FORMATS.values():
        raise UsageError(f"cannot export as {suffix!r}; choose one of {', '.join(EXPORT_FORMATS.values())}")
    keep = export_mask(session, kind)
    if not keep.any():
        raise UsageError(f"nothing to export: the {kind.replace('-', ' ')} is empty")
    return encode_scene(session.base_scene.subset(keep), f"export{suffix}")


def with_format(name: str, fmt: str) -> str:
    """``name`` ending in format ``fmt``'s suffix (a known splat suffix it has is replaced)."""
    suffix = EXPORT_FORMATS[fmt]
    lower = name.lower()
    if lower.endswith(suffix) and not (suffix == ".ply" and lower.endswith(".compressed.ply")):
        return name
    for known in sorted(EXPORT_FORMATS.values(), key=len, reverse=True):  # .compressed.ply before .ply
        if lower.endswith(known):
            return name[: -len(known)] + suffix
    return name + suffix


def export_instance_ply(session: ViewerSession, k: int) -> bytes:
    inst = session.instances
    if inst is None or not 0 <= k < len(inst.sizes):
        raise UsageError(f"no instance {k}")
    return write_ply(session.base_scene.subset(inst.labels == k))


def save_output(output_dir: Path | None, name: str, data: bytes) -> Path:
    """Write ``data`` into ``output_dir`` under a sanitised ``name`` (never outside it, never over an
    existing file: ``a.ply`` becomes ``a-1.ply``, ``a-2.ply``, ...)."""
    with _SAVE_LOCK:  # two tabs saving the same name at once still get two files
        return atomic_write_bytes(output_path(output_dir, name), data)


def output_path(output_dir: Path | None, name: str) -> Path:
    """A path in ``output_dir`` for ``name``, sanitised, confined to it, and not yet taken."""
    if output_dir is None:
        raise UsageError("no output directory was given at start-up (--output-dir)")
    base = Path(name).name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._")
    if not Path(base).stem.strip("._- ") or not Path(safe).stem.strip("._-"):
        raise UsageError(f"{name!r} is not a usable file name; type a name such as 'mug.ply'")
    path = (output_dir / safe).resolve()
    if path.parent != output_dir:
        raise UsageError(f"refusing to write outside {output_dir}")
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"output directory {output_dir} is a file")
    stem, suffix, n = path.stem, path.suffix, 0
    while path.exists():
        n += 1
        path = path.with_name(f"{stem}-{n}{suffix}")
    return path
