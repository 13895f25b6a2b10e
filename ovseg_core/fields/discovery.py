"""Finding a scene's language fields and the text encoder that matches them."""

from __future__ import annotations

import os
from pathlib import Path

from ovseg_core.fields.language_fields import CHECKPOINT_NAME, LanguageFields, load_fields
from ovseg_core.scene import GaussianScene


def candidate_field_paths(scene_path: str | os.PathLike[str]) -> list[Path]:
    """Where fields for ``scene.ply`` are looked for, in order: ``scene.fields.pt``,
    ``scene_fields/``, ``fields/`` and ``langsplatv2_logs/`` beside it."""
    p = Path(scene_path)
    return [
        p.with_suffix(".fields.pt"),
        p.parent / f"{p.stem}_fields",
        p.parent / "fields",
        p.parent / "langsplatv2_logs",
    ]


def discover_fields(scene_path: str | os.PathLike[str], scene: GaussianScene) -> LanguageFields | None:
    """The newest fields beside ``scene_path`` that were trained on ``scene``, or None."""
    for base in candidate_field_paths(scene_path):
        if base.is_file():
            files = [base]
        elif base.is_dir():
            files = sorted(base.rglob(CHECKPOINT_NAME), key=lambda f: f.stat().st_mtime, reverse=True) or sorted(
                base.rglob("*.pt")
            )
        else:
            continue
        for f in files:
            try:
                fields = load_fields(f)
            except ValueError:
                continue
            if fields.scene_fingerprint == scene.fingerprint():
                return fields
    return None
