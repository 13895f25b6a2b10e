"""The built-in demo: ``assets/demo_scene.ply`` in a checkout (regenerated if absent) and its
language fields ``assets/demo_scene.fields.pt``, which answer text prompts offline.

The demo fields are real LangSplatV2 fields, trained by ``scripts/make_demo_fields.py`` through the
ordinary pipeline (capture on disk -> masks + features -> training) but with the palette demo models
of ``ovseg_core.models.palette_models`` instead of SAM 2 + CLIP: the demo scene is made of
flat-coloured objects, so colour masks and a fixed vocabulary stand in for the real models and no
weights are needed. The vocabulary is stored in the checkpoint, so ``demo_text_encoder`` (and
``ovseg_core.models.registry.text_encoder_for``) rebuild the matching text encoder from it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ovseg_core.errors import FieldMismatchError
from ovseg_core.fields.language_fields import LanguageFields, load_fields
from ovseg_core.io import load_scene
from ovseg_core.models.palette_models import (
    Vocabulary,
    VocabularyTextEncoder,
)
from ovseg_core.scene import GaussianScene
from ovseg_core.synthetic import DEMO_OBJECTS, demo_scene

log = logging.getLogger(__name__)


ASSETS_DIR = Path(__file__).resolve().parent / "assets"
"""``ovseg_app/assets``: package data in a wheel; in a checkout the link to the top-level ``assets/``."""
DEMO_PATH = ASSETS_DIR / "demo_scene.ply"
DEMO_FIELDS_PATH = DEMO_PATH.with_suffix(".fields.pt")
"""Where ``discover_fields(DEMO_PATH, scene)`` looks first (``scene.fields.pt`` beside the PLY)."""

DEMO_VOCABULARY_NAME = "ovseg-demo-tabletop-v1"
DEMO_FEATURE_LEVEL = 0
"""The demo fields learn the "default" mask scale (every mask), the only one the palette masks need."""


def load_demo_scene() -> GaussianScene:
    """The shipped demo PLY when present (checkout / editable install), else the same scene built in memory."""
    if DEMO_PATH.exists():
        return load_scene(DEMO_PATH)
    return demo_scene()


# -- the demo's text queries ---------------------------------------------------------------------
def demo_vocabulary() -> Vocabulary:
    """The demo objects' names and colours (``DEMO_OBJECTS``) with seeded 64-dim features."""
    return Vocabulary.build(
        [o.name for o in DEMO_OBJECTS], [o.color for o in DEMO_OBJECTS], dim=64, seed=0, name=DEMO_VOCABULARY_NAME
    )


def load_demo_fields(scene: GaussianScene, path: str | os.PathLike[str] | None = None) -> LanguageFields | None:
    """The shipped demo language fields, checked against ``scene`` (its fingerprint), or None when the
    file is absent (e.g. an install without the repository's ``assets/``) or belongs to another splat."""
    path = Path(path) if path is not None else DEMO_FIELDS_PATH
    if not path.is_file():
        return None
    try:
        return load_fields(path, scene)
    except FieldMismatchError as e:
        log.warning("ignoring the demo language fields: %s", e)
        return None


def demo_text_encoder(fields: LanguageFields | None = None) -> VocabularyTextEncoder:
    """The text encoder of the demo fields: the vocabulary stored in ``fields`` (the demo vocabulary
    when ``fields`` is None). Its ``name`` ("vocabulary:...") says which encoder answers prompts."""
    if fields is None:
        return VocabularyTextEncoder(demo_vocabulary())
    from ovseg_core.models.palette_models import vocabulary_text_encoder

    return vocabulary_text_encoder(fields)


# -- the demo's capture (what the Training panel trains on by default) ---------------------------
DEMO_CAPTURE_DIR = ASSETS_DIR / "demo_capture"
"""Renders of the demo scene with their cameras (``transforms.json`` + ``images/``), written by
``scripts/make_demo_capture.py``; ``scene.json`` names the splat they show."""
DEMO_MODELS = "demo-palette"
"""The Training panel's name for the palette demo models (offline, no weights)."""


def demo_capture_for(scene: GaussianScene) -> Path | None:
    """The shipped demo capture when ``scene`` is the splat it was rendered from, else None."""
    import json

    record = DEMO_CAPTURE_DIR / "scene.json"
    if not record.is_file():
        return None
    try:
        meta = json.loads(record.read_text())
        if int(meta["num_gaussians"]) != scene.num_gaussians or meta["fingerprint"] != scene.fingerprint():
            return None
    except (ValueError, KeyError, TypeError) as e:
        log.warning("ignoring the demo capture's %s: %s", record, e)
        return None
    return DEMO_CAPTURE_DIR


def demo_models():  # noqa: ANN201 - (PaletteMaskGenerator, PaletteImageEncoder)
    """The mask generator and image encoder the demo fields were trained with."""
    from ovseg_core.models.palette_models import palette_models

    masks, images, _ = palette_models(demo_vocabulary())
    return masks, images
