"""Finding a scene's language fields and the text encoder that matches them."""

from __future__ import annotations

import os
from pathlib import Path

from ovseg_core.errors import FieldMismatchError
from ovseg_core.fields.language_fields import CHECKPOINT_NAME, LanguageFields, load_fields
from ovseg_core.models import OpenClipConfig, TextEncoder
from ovseg_core.models.palette_models import VOCABULARY_PREFIX, Vocabulary, VocabularyTextEncoder
from ovseg_core.scene import GaussianScene

TINY_CLIP_PREFIX = "open_clip:ovseg-tiny-clip:random-seed"


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


def text_encoder_for(fields: LanguageFields, clip: OpenClipConfig | None = None) -> TextEncoder:
    """The text tower of the encoder that made the fields' targets: the fixed-vocabulary encoder
    stored in the fields (``vocabulary:`` encoders, e.g. the built-in demo's), the tiny test model
    when the fields were trained with it, else the configured OpenCLIP (default ViT-B-16 laion2b)."""
    from ovseg_core.models import OpenClipEncoder, tiny_open_clip

    name = fields.encoder_name
    if name.startswith(VOCABULARY_PREFIX):
        return vocabulary_text_encoder(fields)
    if name.startswith(TINY_CLIP_PREFIX):
        return tiny_open_clip(seed=int(name[len(TINY_CLIP_PREFIX) :]))
    parts = name.split(":")
    if clip is None and len(parts) == 3 and parts[0] == "open_clip":
        clip = OpenClipConfig(model=parts[1], pretrained=parts[2])  # the same hub weights
    return OpenClipEncoder.from_config(clip or OpenClipConfig())


def vocabulary_text_encoder(fields: LanguageFields) -> VocabularyTextEncoder:
    """The fixed-vocabulary text encoder stored in ``fields.config["vocabulary"]`` (fields trained
    with ``PaletteImageEncoder``). Raises ``FieldMismatchError`` when it is missing or does not
    belong to the fields' encoder."""
    where = f" in {fields.source}" if fields.source else ""
    record = fields.config.get("vocabulary") if isinstance(fields.config, dict) else None
    if not isinstance(record, dict):
        raise FieldMismatchError(
            f"language fields{where} were trained with the fixed-vocabulary encoder {fields.encoder_name!r} "
            "but carry no vocabulary (config['vocabulary']); regenerate them with the vocabulary stored"
        )
    try:
        vocabulary = Vocabulary.from_dict(record)
    except (ValueError, TypeError, RuntimeError) as e:
        raise FieldMismatchError(f"language fields{where}: unreadable vocabulary ({e})") from e
    encoder = VocabularyTextEncoder(vocabulary)
    if encoder.name != fields.encoder_name or encoder.embed_dim != fields.embed_dim:
        raise FieldMismatchError(
            f"language fields{where} were trained with {fields.encoder_name!r} ({fields.embed_dim} dims) but "
            f"store the vocabulary {encoder.name!r} ({encoder.embed_dim} dims)"
        )
    return encoder
