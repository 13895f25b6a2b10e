"""The built-in demo: ``assets/demo_scene.ply`` in a checkout (regenerated if absent) and its
language fields ``assets/demo_scene.fields.pt``, which answer text prompts offline.

The demo fields are real LangSplatV2 fields, trained by ``scripts/make_demo_fields.py`` through the
ordinary pipeline (capture on disk -> masks + features -> training) but with the palette demo models
of ``ovseg_core.models.palette_models`` instead of SAM 2 + CLIP: the demo scene is made of
flat-coloured objects, so colour masks and a fixed vocabulary stand in for the real models and no
weights are needed. The vocabulary is stored in the checkpoint, so ``demo_text_encoder`` (and
``ovseg_core.fields.discovery.text_encoder_for``) rebuild the matching text encoder from it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ovseg_core.camera import Camera, orbit_cameras
from ovseg_core.errors import FieldMismatchError
from ovseg_core.fields.language_fields import LanguageFields, load_fields
from ovseg_core.io import load_scene
from ovseg_core.models.palette_models import (
    PaletteImageEncoder,
    PaletteMaskGenerator,
    Vocabulary,
    VocabularyTextEncoder,
)
from ovseg_core.scene import GaussianScene
from ovseg_core.synthetic import DEMO_OBJECTS, demo_scene

log = logging.getLogger(__name__)


def _assets_dir() -> Path:
    """The demo assets: ``ovseg_app/assets`` inside an installed wheel, ``assets/`` in a checkout
    (an editable install maps only top-level packages, so the checkout's folder is used as is)."""
    try:
        from importlib.resources import files

        # assets/ has no __init__.py: files() gives a MultiplexedPath, whose str() is not a path
        return Path(str(files("ovseg_app.assets").joinpath("demo_scene.ply"))).parent
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "assets"


ASSETS_DIR = _assets_dir()
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


# -- how the demo fields are made (scripts/make_demo_fields.py) ----------------------------------
def demo_capture_cameras(width: int = 160, height: int = 120, per_ring: int = 8) -> list[Camera]:
    """Four rings around the table: high, mid and near-horizontal rings on the objects, and a low
    ring from below the table top (its underside and legs)."""
    rings = (
        ((0.0, 0.0, 0.8), 1.3, 60.0),
        ((0.0, 0.0, 0.8), 1.3, 30.0),
        ((0.0, 0.0, 0.8), 1.3, 6.0),
        ((0.0, 0.0, 0.45), 1.6, -20.0),
    )
    cams: list[Camera] = []
    for i, (center, radius, elevation) in enumerate(rings):
        # every other ring half a step round, so the rings' azimuths interleave
        ring = orbit_cameras(center, radius, 2 * per_ring, elevation_deg=elevation, width=width, height=height)
        cams += ring[i % 2 :: 2]
    return cams


def train_demo_fields(
    scene: GaussianScene,
    work_dir: str | os.PathLike[str],
    *,
    cameras: Sequence[Camera] | None = None,
    max_steps: int = 500,
    contributions_top_k: int = 16,
    contributions_min_weight: float = 0.02,
    fill: bool = True,
    vocabulary: Vocabulary | None = None,
    progress: Callable[..., None] | None = None,
):
    """Render ``cameras`` (default ``demo_capture_cameras()``) of ``scene`` into a capture under
    ``work_dir``, then preprocess and train LangSplatV2 fields at level 0 with the palette models.
    ``contributions_top_k`` 16 (not 64): the demo's Gaussians are nearly opaque, so a pixel's
    first 16 carry all but a negligible part of its weight, and steps are ~4x cheaper.
    ``contributions_min_weight`` 0.02: a Gaussian learns only from pixels where it is at least
    slightly visible (Adam's per-parameter step would otherwise pull Gaussians hidden behind an
    object to that object's feature from their tiny weights alone); with ``fill`` the Gaussians
    that no view showed above that weight then take their nearest observed neighbour's codes
    (``fill_unobserved``).
    Returns the ``PipelineResult``; its fields carry the vocabulary in ``config["vocabulary"]``."""
    from ovseg_core.fields.training import LanguageTrainConfig
    from ovseg_core.pipeline import train_from_dataset
    from ovseg_core.synthetic_capture import write_capture

    vocabulary = vocabulary or demo_vocabulary()
    cameras = list(cameras) if cameras is not None else demo_capture_cameras()
    write_capture(scene, cameras, work_dir)
    result = train_from_dataset(
        scene,
        work_dir,
        config=LanguageTrainConfig(
            feature_level=DEMO_FEATURE_LEVEL,
            max_steps=max_steps,
            log_every=20,
            contributions_top_k=contributions_top_k,
            contributions_min_weight=contributions_min_weight,
        ),
        mask_generator=PaletteMaskGenerator(vocabulary.colors.numpy()),
        image_encoder=PaletteImageEncoder(vocabulary),
        progress=progress,
    )
    result.fields.config["vocabulary"] = vocabulary.to_dict()
    if fill:
        fill_unobserved(
            result.fields,
            scene,
            observed_weight(scene, cameras, contributions_top_k),
            min_weight=max(contributions_min_weight, 1e-4),
        )
    return result


def observed_weight(scene: GaussianScene, cameras: Sequence[Camera], top_k: int = 16) -> np.ndarray:
    """``[N]`` the largest blending weight (alpha * transmittance) each Gaussian has in any pixel of
    ``cameras``: ~0 for Gaussians no view sees (under or inside objects)."""
    from ovseg_core.render import make_renderer

    renderer = make_renderer("cpu")
    best = np.zeros(scene.num_gaussians, np.float32)
    for cam in cameras:
        out = renderer.render(scene, cam, top_k=top_k)
        ids = out.contrib_ids[0].cpu().numpy().reshape(-1)
        w = out.contrib_weights[0].cpu().numpy().astype(np.float32).reshape(-1)
        ok = ids >= 0
        np.maximum.at(best, ids[ok], w[ok])
    return best


def fill_unobserved(
    fields: LanguageFields,
    scene: GaussianScene,
    observed: np.ndarray,
    min_weight: float = 0.02,
    source_weight: float = 0.3,
) -> int:
    """Give every Gaussian whose ``observed`` weight is below ``min_weight`` the codes of its nearest
    (in 3D) Gaussian observed with weight >= ``source_weight``. Returns how many were filled.

    Training never touches Gaussians that no view sees (the parts of objects resting on the table,
    the table under them): they keep the uniform initial logits, whose top-k code decodes to an
    arbitrary mix of codebook entries and so to an arbitrary object. For the demo they inherit
    their surroundings instead. Works on the factored levels; clears ``state`` (the raw logits no
    longer match)."""
    from scipy.spatial import cKDTree

    observed = np.asarray(observed)
    targets = np.flatnonzero(observed < min_weight)
    sources = np.flatnonzero(observed >= source_weight)
    if len(targets) == 0 or len(sources) == 0:
        return 0
    means = scene.means.detach().cpu().numpy().astype(np.float64)
    _, nn = cKDTree(means[sources]).query(means[targets])
    src = torch.from_numpy(sources[nn])
    dst = torch.from_numpy(targets)
    for codes in fields.levels.values():
        codes.idx[dst] = codes.idx[src]
        codes.val[dst] = codes.val[src]
    fields.state = {}
    fields.config["filled_unobserved"] = {
        "count": int(len(targets)),
        "min_weight": float(min_weight),
        "source_weight": float(source_weight),
    }
    return int(len(targets))


def compact_for_shipping(fields: LanguageFields) -> LanguageFields:
    """Drop the raw training tensors so ``save`` writes the factored levels (idx/val/basis), which
    are ~5x smaller than the per-Gaussian logits and load the same for queries."""
    fields.state = {}
    return fields
