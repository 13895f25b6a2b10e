"""Language fields on frozen splats: LangSplatV2 training, checkpoints and text queries.

Names load on first use: ``ovseg_core.fields.config`` (the settings) imports without torch."""

from __future__ import annotations

from ovseg_core._lazy import lazy_exports

_EXPORTS = {
    "CodebookField": "ovseg_core.fields.codebook_field",
    "DEFAULT_NEGATIVES": "ovseg_core.fields.config",
    "FieldConfig": "ovseg_core.fields.config",
    "FieldQuery": "ovseg_core.fields.relevancy",
    "LanguageFieldTrainer": "ovseg_core.fields.training",
    "LanguageFields": "ovseg_core.fields.language_fields",
    "LanguageTrainConfig": "ovseg_core.fields.config",
    "LevelCodes": "ovseg_core.fields.language_fields",
    "QuerySettings": "ovseg_core.fields.relevancy",
    "TrainProgress": "ovseg_core.fields.training",
    "TrainingView": "ovseg_core.fields.training",
    "load_fields": "ovseg_core.fields.language_fields",
    "resolve_checkpoint": "ovseg_core.fields.language_fields",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
