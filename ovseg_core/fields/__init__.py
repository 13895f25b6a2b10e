"""Language fields on frozen splats: LangSplatV2 training, checkpoints and text queries."""

from ovseg_core.fields.codebook_field import CodebookField, FieldConfig
from ovseg_core.fields.language_fields import LanguageFields, LevelCodes, load_fields, resolve_checkpoint
from ovseg_core.fields.relevancy import DEFAULT_NEGATIVES, FieldQuery, QuerySettings
from ovseg_core.fields.training import LanguageFieldTrainer, LanguageTrainConfig, TrainingView, TrainProgress

__all__ = [
    "CodebookField",
    "DEFAULT_NEGATIVES",
    "FieldConfig",
    "FieldQuery",
    "LanguageFieldTrainer",
    "LanguageFields",
    "LanguageTrainConfig",
    "LevelCodes",
    "QuerySettings",
    "TrainProgress",
    "TrainingView",
    "load_fields",
    "resolve_checkpoint",
]
