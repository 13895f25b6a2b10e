"""Finding a scene's language fields: the files beside it that were trained (or lifted) on it."""

from __future__ import annotations

import os
from pathlib import Path

from ovseg_core.errors import MissingFileError
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


def _scan(scene_path: str | os.PathLike[str], scene: GaussianScene) -> tuple[LanguageFields | None, list[str]]:
    """The newest matching fields (or None) and why each checkpoint looked at was passed over."""
    passed: list[str] = []
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
            except ValueError as e:
                passed.append(f"{f}: {e}")
                continue
            if fields.scene_fingerprint == scene.fingerprint():
                return fields, passed
            passed.append(f"{f}: trained on another splat")
    return None, passed


def discover_fields(scene_path: str | os.PathLike[str], scene: GaussianScene) -> LanguageFields | None:
    """The newest fields beside ``scene_path`` that were trained on ``scene``, or None."""
    return _scan(scene_path, scene)[0]


def open_fields(scene_path: str | os.PathLike[str], scene: GaussianScene | None = None) -> LanguageFields:
    """The language fields that belong to the scene at ``scene_path`` (trained LangSplatV2 fields or
    lifted ones), found beside it (``candidate_field_paths``) and checked against the scene
    (``scene``: the loaded splat, else it is loaded). Raises ``MissingFileError`` naming every place
    looked in (and why any checkpoint found there was passed over) when none belongs to it."""
    if scene is None:
        from ovseg_core.io import load_scene

        scene = load_scene(scene_path)
    fields, passed = _scan(scene_path, scene)
    if fields is None:
        where = ", ".join(str(p) for p in candidate_field_paths(scene_path))
        why = f"; passed over {'; '.join(passed)}" if passed else ""
        raise MissingFileError(
            f"no language fields for {scene_path} found (looked in {where}{why}); "
            "train them (ovseg train) or give their path"
        )
    return fields
