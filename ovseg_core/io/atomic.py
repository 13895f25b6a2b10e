"""Atomic file writes: a reader sees the old file or the whole new one, never half of it."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

STALE_TEMP_AGE_S = 3600.0
"""A temporary file this old was left by a killed writer (SIGKILL, power loss): removed on the next write."""


def umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temp_prefix(target: Path) -> str:
    """The hidden name prefix of ``target``'s temporary files (``.name.`` + random + suffix)."""
    return f".{target.name}."


def remove_stale_temps(target: Path, suffix: str = ".tmp", max_age_s: float = STALE_TEMP_AGE_S) -> int:
    """Delete temporary files of ``target`` older than ``max_age_s`` (a younger one may belong to a
    writer still running); returns how many were removed."""
    removed = 0
    now = time.time()
    try:
        candidates = list(target.parent.glob(f"{temp_prefix(target)}*{suffix}"))
    except OSError:
        return 0
    for stale in candidates:
        try:
            if stale.is_file() and now - stale.stat().st_mtime > max_age_s:
                stale.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``.

    Raises:
        IsADirectoryError: ``path`` is a directory.
        NotADirectoryError / FileExistsError: a parent of ``path`` is a file.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a directory; cannot write a file there")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, umask_mode())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
