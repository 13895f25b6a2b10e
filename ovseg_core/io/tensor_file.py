"""Reading ovseg's own torch files (fields checkpoints, instance sets) safely: ``weights_only``
loading, a format header and a version no newer than this code understands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ovseg_core.errors import FieldMismatchError


def load_tagged_payload(path: Path, file_format: str, max_version: int, what: str) -> dict[str, Any]:
    """The dict saved at ``path``; ``FieldMismatchError`` naming the file when it is unreadable,
    not a ``file_format`` file, or from a newer ovseg. ``what`` names the kind in messages."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise FieldMismatchError(f"{path}: not a readable ovseg {what} ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != file_format:
        raise FieldMismatchError(f"{path}: not an ovseg {what} (no '{file_format}' header)")
    if payload.get("version", 0) > max_version:
        raise FieldMismatchError(
            f"{path}: {what} version {payload['version']} is newer than this ovseg ({max_version})"
        )
    return payload
